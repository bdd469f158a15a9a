"""A jobs service wired for handler-level tests: manual clock, recording notifier, real DB."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from lantern.gateway import DeviceRequest, HandlerResult, ReservedTopicRouter, ThingIdentity
from lantern.gateway.identity import Identity
from lantern.jobs.catalog import FirmwareCatalog, ThingGroups
from lantern.jobs.clock import ManualClock
from lantern.jobs.deployments import DeploymentService, DeploymentSpec
from lantern.jobs.device_api import JobsDeviceAPI
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.generic import JobService
from lantern.jobs.queries import FirmwareRecord, JobsQueries
from lantern.jobs.throttle import TokenBuckets
from lantern.jobs.timer import JobsTimer
from lantern.store import Database
from lantern.store.objects import LocalObjectStore
from lantern.store.schema.registry import things
from lantern.store.signing import UrlSigner

BASE_URL = "http://lantern.test:8080"


@dataclass
class Recorder:
    """A Notifier that keeps what was published."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.messages.append((topic, json.loads(payload)))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.messages = self.messages, []
        return out


@dataclass
class Response:
    topic: str
    body: dict[str, Any]
    notifications: list[tuple[str, dict[str, Any]]]
    result: HandlerResult

    @property
    def accepted(self) -> bool:
        return self.topic.endswith("/accepted")


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Kit:
    def __init__(self, db: Database, root: Path, limiter: TokenBuckets | None = None) -> None:
        self.db = db
        self.clock = ManualClock()
        self.signer = UrlSigner(b"k" * 32)
        self.renderer = DocumentRenderer(self.signer, lambda: BASE_URL, 3600, self.clock)
        self.api = JobsDeviceAPI(db, self.renderer, self.clock, limiter)
        self.router = ReservedTopicRouter()
        self.api.register(self.router)
        self.recorder = Recorder()
        self.timer = JobsTimer(db, self.renderer, self.clock, self.recorder)
        self.deployments = DeploymentService(db, self.clock)
        self.objects = LocalObjectStore(root / "files")
        self.catalog = FirmwareCatalog(db, self.objects, self.clock, 10_000_000)
        self.jobs = JobService(db, self.clock, self.objects)
        self.groups = ThingGroups(db, self.clock)
        self.queries = JobsQueries(db)
        self.firmware: FirmwareRecord | None = None

    async def close(self) -> None:
        await self.api.close()

    async def add_things(self, *names: str, project: str = "default") -> None:
        now = self.clock.now()
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(things),
                [
                    {
                        "name": n,
                        "project": project,
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in names
                ],
            )

    async def add_firmware(
        self, data: bytes = b"firmware-image" * 100, version: str = "1.0.0"
    ) -> FirmwareRecord:
        self.firmware = await self.catalog.upload(chunks_of(data), version=version)
        return self.firmware

    async def deploy(self, *names: str, tick: bool = True, **options: Any) -> str:
        fw = self.firmware or await self.add_firmware()
        job = await self.deployments.create(
            DeploymentSpec(firmware_id=fw.id, things=list(names), **options)
        )
        if tick:
            await self.timer.tick()
        return job.job_id

    async def call(
        self,
        thing: str,
        suffix: str,
        body: dict[str, Any] | bytes | None = None,
        *,
        identity: Identity | None = None,
    ) -> Response:
        topic = f"$aws/things/{thing}/jobs/{suffix}"
        payload = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        found = self.router.resolve(topic)
        assert found is not None, f"no route for {topic}"
        handler, params = found
        request = DeviceRequest(
            topic=topic,
            payload=payload,
            identity=identity or ThingIdentity("cert", thing, "default"),
            client_id=thing,
            qos=1,
            topic_params=params,
        )
        result = await handler(request)
        direct = [r for r in result.replies if r.to == "requester"]
        assert len(direct) <= 1
        notes = [(r.topic, json.loads(r.payload)) for r in result.replies if r.to == "subscribers"]
        if not direct:
            return Response("", {}, notes, result)
        return Response(direct[0].topic, json.loads(direct[0].payload), notes, result)
