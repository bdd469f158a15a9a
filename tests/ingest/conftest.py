"""Fixtures of the ingest tests: services over a real SQLite database, and the HTTP app served by
uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from lantern.api.app import create_app
from lantern.api.fhir import build_fhir_router
from lantern.api.files import build_files_router
from lantern.gateway.identity import ClaimIdentity, ThingIdentity
from lantern.gateway.router import DeviceRequest
from lantern.ingest.files import FileLinkService
from lantern.ingest.observations import ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.runtime.datadir import DataDir
from lantern.store import Database
from lantern.store.ingest import open_observation_sink
from lantern.store.objects import LocalObjectStore
from lantern.store.registry import ThingRecord, insert_thing
from lantern.store.schema.ingest import files, observation_codes, observations, upload_links
from lantern.store.signing import UrlSigner
from support.net import free_port

from .s3 import moto_s3  # noqa: F401 - session fixture for every module


def thing(name: str, project: str = "default") -> ThingIdentity:
    return ThingIdentity(certificate_id="c" * 64, thing_name=name, project=project)


CLAIM = ClaimIdentity(
    certificate_id="d" * 64, claim_id="claim1", project="default", allowed_templates=frozenset()
)


def request(topic: str, payload: bytes, identity: object, qos: int = 1) -> DeviceRequest:
    return DeviceRequest(
        topic=topic,
        payload=payload,
        identity=identity,  # type: ignore[arg-type]
        client_id="client-1",
        qos=qos,
        topic_params={},
    )


async def count_rows(db: Database, table: object) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def stored_counts(db: Database) -> tuple[int, ...]:
    return tuple([await count_rows(db, t) for t in (observations, observation_codes, files)])


async def add_thing(db: Database, name: str, project: str = "default", **fields: str) -> None:
    record = ThingRecord(
        name=name,
        project=project,
        attributes={},
        template_name=None,
        serial_number=fields.get("serial_number"),
        manufacturer=fields.get("manufacturer"),
        model=fields.get("model"),
        device_name=fields.get("device_name"),
        created_at=1.0,
        updated_at=1.0,
    )
    async with db.transaction() as conn:
        await insert_thing(conn, record)


async def add_project(db: Database, name: str) -> None:
    from sqlalchemy import insert

    from lantern.store.schema.core import projects

    async with db.transaction() as conn:
        await conn.execute(insert(projects).values(name=name, created_at=1.0))


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[GroupCommitWriter]:
    """The observation writer over ``db`` (SQLite and PostgreSQL), as the runtime builds it."""
    w = GroupCommitWriter(open_observation_sink(db), batch_max=256)
    await w.start()
    yield w
    await w.stop()


@pytest.fixture
def observation_service(writer: GroupCommitWriter) -> ObservationService:
    return ObservationService(writer, max_payload_bytes=4096)


@dataclass
class HttpApp:
    base_url: str
    admin_token: str
    db: Database
    files: FileLinkService
    data_dir: Path
    clock: list[float]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0)


@contextlib.asynccontextmanager
async def serve_http(app: object) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def http_app(db: Database, data_dir: Path) -> AsyncIterator[HttpApp]:
    dd = DataDir(data_dir)
    dd.ensure()
    clock = [1_700_000_000.0]
    base: list[str] = [""]
    service = FileLinkService(
        db,
        LocalObjectStore(dd.files_dir),
        UrlSigner(b"s" * 32),
        base_url=lambda: base[0],
        backend="local",
        s3_direct=False,
        ttl_seconds=900,
        max_upload_bytes=64 * 1024,
        clock=lambda: clock[0],
    )
    app = create_app(
        routers=[
            build_fhir_router(db, admin_token=dd.admin_token, public_url=lambda: None),
            build_files_router(service, admin_token=dd.admin_token),
        ]
    )
    async with serve_http(app) as url:
        base[0] = url
        yield HttpApp(url, dd.admin_token(), db, service, data_dir, clock)


__all__ = [
    "CLAIM",
    "add_project",
    "add_thing",
    "count_rows",
    "request",
    "stored_counts",
    "thing",
    "upload_links",
]
