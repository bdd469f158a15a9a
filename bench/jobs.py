"""Jobs benchmarks (not a test): deployment creation for 10,000 things, and UpdateJobExecution
round trips per second with many devices at once.

In-process, at the handler level (the same JobsDeviceAPI handlers the gateway router calls, with a
real SQLite database in WAL mode), so the figures measure the jobs service and the store, not the
MQTT transport. Updates go through the group-commit writer (lantern.jobs.updates): each reply
waits for the commit of the batch holding its change.
Run: ``.venv/bin/python bench/jobs.py [--things 10000] [--devices 200] [--updates 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import insert

from lantern.gateway import DeviceRequest, ReservedTopicRouter, ThingIdentity
from lantern.jobs.catalog import FirmwareCatalog
from lantern.jobs.clock import SystemClock
from lantern.jobs.deployments import DeploymentService, DeploymentSpec
from lantern.jobs.device_api import JobsDeviceAPI
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.timer import JobsTimer
from lantern.store import Database
from lantern.store.objects import LocalObjectStore
from lantern.store.schema.registry import things
from lantern.store.signing import UrlSigner


class CountingNotifier:
    def __init__(self) -> None:
        self.count = 0

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.count += 1


async def _image() -> AsyncIterator[bytes]:
    yield b"\x00" * 1_000_000


async def main(n_things: int, n_devices: int, updates_each: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = await Database.open(f"sqlite+aiosqlite:///{root / 'bench.db'}")
        clock = SystemClock()
        renderer = DocumentRenderer(UrlSigner(b"b" * 32), lambda: "http://bench", 3600, clock)
        notifier = CountingNotifier()
        timer = JobsTimer(db, renderer, clock, notifier)
        deployments = DeploymentService(db, clock)
        catalog = FirmwareCatalog(db, LocalObjectStore(root / "files"), clock, 10**9)
        names = [f"thing-{i:05d}" for i in range(n_things)]
        now = clock.now()
        async with db.transaction() as conn:
            await conn.execute(
                insert(things),
                [
                    {
                        "name": n,
                        "project": "default",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in names
                ],
            )
        fw = await catalog.upload(_image(), version="1.0.0")

        t0 = time.perf_counter()
        job = await deployments.create(DeploymentSpec(firmware_id=fw.id, all_things=True))
        t1 = time.perf_counter()
        await timer.tick()
        t2 = time.perf_counter()
        print(
            f"deployment for {n_things} things: create {t1 - t0:.2f} s (job + executions), "
            f"rollout tick {t2 - t1:.2f} s (queue all + {notifier.count} notify messages), "
            f"total {t2 - t0:.2f} s"
        )

        router = ReservedTopicRouter()
        api = JobsDeviceAPI(db, renderer, clock)
        api.register(router)
        devices = names[:n_devices]

        async def device(name: str) -> None:
            topic = f"$aws/things/{name}/jobs/{job.job_id}/update"
            found = router.resolve(topic)
            assert found is not None
            handler, params = found
            for i in range(updates_each):
                status = "SUCCEEDED" if i == updates_each - 1 else "IN_PROGRESS"
                payload = json.dumps(
                    {
                        "status": status,
                        "clientToken": f"{name}-{i}",
                        "statusDetails": {"percentProgress": str(i)},
                    }
                ).encode()
                result = await handler(
                    DeviceRequest(
                        topic, payload, ThingIdentity("c", name, "default"), name, 1, params
                    )
                )
                assert result.replies[0].topic.endswith("/accepted"), result.replies[0].payload

        t3 = time.perf_counter()
        await asyncio.gather(*(device(n) for n in devices))
        elapsed = time.perf_counter() - t3
        total = n_devices * updates_each
        print(
            f"UpdateJobExecution: {total} round trips from {n_devices} concurrent devices in "
            f"{elapsed:.2f} s = {total / elapsed:.0f}/s (handler level, SQLite WAL, "
            "synchronous=FULL)"
        )
        await api.close()
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--things", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--updates", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.things, args.devices, args.updates))
