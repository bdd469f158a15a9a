"""A scheduler process for the multi-process test: fires what is due at a given instant once.

Usage: python scheduler_worker.py DB_URL NOW OUT_FILE GO_FILE
Waits until GO_FILE exists (so both processes start claiming together), runs one pass with a
manual clock at NOW, appends "schedule_id scheduled_at" per completed send to OUT_FILE.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lantern.schedule import ManualClock, Scheduler
from lantern.schedule.payloads import DeliveryJob
from lantern.settings.schedule import ScheduleSettings
from lantern.store import Database
from lantern.store.schedule import ScheduleStore


@dataclass(frozen=True)
class Sent:
    status: str = "delivered"
    reason: str | None = None
    delivery_id: str | None = None


async def main(url: str, now: float, out: Path, go: Path) -> None:
    db = await Database.open(url)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def deliver(job: DeliveryJob) -> Sent:
        os.write(fd, f"{job.schedule_id} {job.scheduled_at} {os.getpid()}\n".encode())
        await asyncio.sleep(0)  # let the other claims interleave
        return Sent()

    settings = ScheduleSettings(batch_size=20, concurrency=50)
    scheduler = Scheduler(ScheduleStore(db), deliver, ManualClock(now), settings)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await scheduler.run_once()
    await scheduler.stop()
    os.close(fd)
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])))
