"""Generic jobs benchmark (not a test): a job for a thing group of 10,000 members made by the
generic path (what AWS CreateJob and ``lantern jobs create`` call) beside a firmware deployment
to the same group (``lantern deployments create --group``), in the same run; then the rollout
tick that queues them, and the steady-state tick of a CONTINUOUS job (membership checked, nothing
changed), the price of continuous targeting per timer tick.

In-process at the service level on a SQLite file (WAL, synchronous=FULL), so the figures measure
the jobs service and the store, not HTTP.
Run: ``.venv/bin/python bench/generic_jobs.py [--things 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from sqlalchemy import insert

from lantern.jobs.catalog import FirmwareCatalog, ThingGroups
from lantern.jobs.clock import SystemClock
from lantern.jobs.deployments import DeploymentService, DeploymentSpec
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.generic import JobService, JobSpec
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
    yield b"\x00" * 100_000


async def timed(fn: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn``."""
    c0, t0 = time.process_time(), time.perf_counter()
    await fn()
    return time.perf_counter() - t0, time.process_time() - c0


async def run(root: Path, n_things: int) -> list[tuple[str, str]]:
    db = await Database.open(f"sqlite+aiosqlite:///{root / 'bench.db'}")
    try:
        clock = SystemClock()
        objects = LocalObjectStore(root / "files")
        renderer = DocumentRenderer(UrlSigner(b"b" * 32), lambda: "http://bench", 3600, clock)
        timer = JobsTimer(db, renderer, clock, CountingNotifier())
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
        groups = ThingGroups(db, clock)
        await groups.create("fleet")
        await groups.add("fleet", names)
        fw = await FirmwareCatalog(db, objects, clock, 10**9).upload(_image(), version="1.0.0")
        deployments = DeploymentService(db, clock)
        jobs = JobService(db, clock, objects)
        document = json.dumps(
            {
                "operation": "install",
                "url": f"${{aws:iot:s3-presigned-url:lantern://firmware/{fw.id}}}",
            }
        )
        rows: list[tuple[str, str]] = []

        def fmt(figures: tuple[float, float]) -> str:
            return f"{figures[0]:.2f} ({figures[1]:.2f})"

        rows.append(
            (
                "deployment create (lantern deployments), s (CPU s)",
                fmt(await timed(lambda: deployments.create(DeploymentSpec(fw.id, group="fleet")))),
            )
        )
        rows.append(
            ("  its rollout tick (queue + notify), s (CPU s)", fmt(await timed(timer.tick)))
        )
        rows.append(
            (
                "generic job create (CreateJob path), s (CPU s)",
                fmt(
                    await timed(
                        lambda: jobs.create(
                            JobSpec(job_id="generic-1", groups=["fleet"], document=document)
                        )
                    )
                ),
            )
        )
        rows.append(
            ("  its rollout tick (queue + notify), s (CPU s)", fmt(await timed(timer.tick)))
        )
        await jobs.create(
            JobSpec(
                job_id="continuous-1",
                groups=["fleet"],
                document=document,
                target_selection="CONTINUOUS",
            )
        )
        await timer.tick()
        rows.append(
            (
                f"steady tick with a CONTINUOUS job of {n_things}, s (CPU s)",
                fmt(await timed(timer.tick)),
            )
        )
        return rows
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--things", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(run(Path(tmp), args.things))
    width = max(len(label) for label, _ in rows)
    print(f"{args.things} things in one group, SQLite")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
