"""Jobs benchmarks (not a test): deployment creation for 10,000 things, the rollout tick, and
UpdateJobExecution round trips per second with many devices at once, on SQLite and (with
``--database-url``) on PostgreSQL, printed side by side.

In-process, at the handler level (the same JobsDeviceAPI handlers the gateway router calls, with a
real database: SQLite in WAL mode with synchronous=FULL, or PostgreSQL), so the figures measure
the jobs service and the store, not the MQTT transport. Updates go through the group-commit
writer (lantern.jobs.updates): each reply waits for the commit of the batch holding its change.
"CPU ms per update" is this process's CPU time (event loop and writer thread; not PostgreSQL's
server processes) over the update phase, a steadier figure than the rate on a shared machine.

``--database-url`` names a PostgreSQL server (``postgresql+asyncpg://user@host/db``): the bench
creates a database of its own there, and drops it after.
Run: ``.venv/bin/python bench/jobs.py [--things 10000] [--devices 200] [--updates 5]
[--database-url URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import make_url

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


@dataclass
class Figures:
    create_s: float
    create_cpu_s: float
    tick_s: float
    tick_cpu_s: float
    notified: int
    updates: int
    update_s: float
    cpu_ms_per_update: float
    p50_ms: float
    p99_ms: float

    def rows(self) -> list[tuple[str, str]]:
        return [
            (
                "deployment create (job + executions), s (CPU s)",
                f"{self.create_s:.2f} ({self.create_cpu_s:.2f})",
            ),
            (
                f"rollout tick (queue all + {self.notified} notify), s (CPU s)",
                f"{self.tick_s:.2f} ({self.tick_cpu_s:.2f})",
            ),
            ("UpdateJobExecution round trips/s", f"{self.updates / self.update_s:.0f}"),
            ("CPU ms per update (this process)", f"{self.cpu_ms_per_update:.3f}"),
            ("update latency p50 / p99, ms", f"{self.p50_ms:.1f} / {self.p99_ms:.1f}"),
        ]


async def _image() -> AsyncIterator[bytes]:
    yield b"\x00" * 1_000_000


async def _add_things(db: Database, names: list[str], now: float) -> None:
    rows = [
        {"name": n, "project": "default", "attributes": {}, "created_at": now, "updated_at": now}
        for n in names
    ]
    async with db.transaction() as conn:
        await conn.execute(insert(things), rows)


async def run(db: Database, root: Path, n_things: int, n_devices: int, each: int) -> Figures:
    clock = SystemClock()
    renderer = DocumentRenderer(UrlSigner(b"b" * 32), lambda: "http://bench", 3600, clock)
    notifier = CountingNotifier()
    timer = JobsTimer(db, renderer, clock, notifier)
    deployments = DeploymentService(db, clock)
    catalog = FirmwareCatalog(db, LocalObjectStore(root / "files"), clock, 10**9)
    names = [f"thing-{i:05d}" for i in range(n_things)]
    await _add_things(db, names, clock.now())
    fw = await catalog.upload(_image(), version="1.0.0")

    c0, t0 = time.process_time(), time.perf_counter()
    job = await deployments.create(DeploymentSpec(firmware_id=fw.id, all_things=True))
    c1, t1 = time.process_time(), time.perf_counter()
    await timer.tick()
    c2, t2 = time.process_time(), time.perf_counter()

    router = ReservedTopicRouter()
    api = JobsDeviceAPI(db, renderer, clock)
    api.register(router)
    latencies: list[float] = []

    async def device(name: str) -> None:
        topic = f"$aws/things/{name}/jobs/{job.job_id}/update"
        found = router.resolve(topic)
        assert found is not None
        handler, params = found
        for i in range(each):
            status = "SUCCEEDED" if i == each - 1 else "IN_PROGRESS"
            payload = json.dumps(
                {
                    "status": status,
                    "clientToken": f"{name}-{i}",
                    "statusDetails": {"percentProgress": str(i)},
                }
            ).encode()
            request = DeviceRequest(
                topic, payload, ThingIdentity("c", name, "default"), name, 1, params
            )
            started = time.perf_counter()
            result = await handler(request)
            latencies.append(time.perf_counter() - started)
            assert result.replies[0].topic.endswith("/accepted"), result.replies[0].payload

    cpu0, t3 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(device(n) for n in names[:n_devices]))
    elapsed, cpu = time.perf_counter() - t3, time.process_time() - cpu0
    await api.close()
    total = n_devices * each
    cuts = statistics.quantiles(latencies, n=100)
    return Figures(
        create_s=t1 - t0,
        create_cpu_s=c1 - c0,
        tick_s=t2 - t1,
        tick_cpu_s=c2 - c1,
        notified=notifier.count,
        updates=total,
        update_s=elapsed,
        cpu_ms_per_update=1000 * cpu / total,
        p50_ms=1000 * cuts[49],
        p99_ms=1000 * cuts[98],
    )


@asynccontextmanager
async def sqlite_database(root: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{root / 'bench.db'}")
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def postgres_database(server_url: str) -> AsyncIterator[Database]:
    """A database of its own on the server at ``server_url``, dropped after."""
    import asyncpg

    base = make_url(server_url)
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"lantern_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            db = await Database.open(base.set(database=name).render_as_string(hide_password=False))
            try:
                yield db
            finally:
                await db.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def measure(label: str, args: argparse.Namespace) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if label == "SQLite":
            opened = sqlite_database(root)
        else:
            opened = postgres_database(args.database_url)
        async with opened as db:
            return await run(db, root, args.things, args.devices, args.updates)


async def main(args: argparse.Namespace) -> None:
    labels = ["SQLite"] + (["PostgreSQL"] if args.database_url else [])
    results = [await measure(label, args) for label in labels]
    print(
        f"jobs bench: {args.things} things, {args.devices} concurrent devices x {args.updates} "
        "updates (handler level; SQLite WAL synchronous=FULL)"
    )
    columns = [figures.rows() for figures in results]
    width = max(len(name) for name, _ in columns[0])
    print(" " * width + "".join(f"{label:>16}" for label in labels))
    for i, (name, _) in enumerate(columns[0]):
        print(f"{name:{width}}" + "".join(f"{column[i][1]:>16}" for column in columns))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--things", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server to run on too (see above)"
    )
    asyncio.run(main(parser.parse_args()))
