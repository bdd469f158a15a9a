"""Scheduler benchmark (not a test).

1. Loads 100,000 schedules (daily reminders at random local times in four zones).
2. CPU of the scheduler loop at rest: nothing due for an hour; process CPU seconds per minute.
3. Lateness when 10,000 occurrences fall due in the same minute (worst case: all at the same
   second), delivered by a fast fake deliverer: p50 / p99 / max of (send time - due time).

Usage: python bench/schedules.py [--db URL] [--rest-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import time as dtime
from pathlib import Path

from sqlalchemy import insert, update

from lantern.schedule import Rule, ScaledClock, Scheduler
from lantern.schedule.payloads import DeliveryJob
from lantern.schedule.rules import format_times
from lantern.settings.schedule import ScheduleSettings
from lantern.store import Database
from lantern.store.schedule import ScheduleStore
from lantern.store.schema.schedule import schedule_destinations, schedules

ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata"]


@dataclass(frozen=True)
class Sent:
    status: str = "delivered"
    reason: str | None = None
    delivery_id: str | None = None


async def load(db: Database, count: int, now: float) -> None:
    rng = random.Random(7)
    rows, dests = [], []
    for i in range(count):
        tz = ZONES[i % 4]
        t = dtime(rng.randrange(24), rng.randrange(60))
        rule = Rule.build(
            timezone=tz,
            start_at=int(now) - 86400,
            end_at=None,
            cron=None,
            repeat="daily",
            times=[t],
        )
        nxt = rule.next_after(now + 3600)  # nothing due during the rest measurement
        sid = f"sch_{i:016x}"
        rows.append(
            dict(
                id=sid,
                key_id="key_bench",
                activity_id=f"a{i % 500}",
                participant_id=f"p{i}",
                title="Reminder",
                message="Please open the app",
                timezone=tz,
                start_at=rule.start_at,
                end_at=None,
                cron=None,
                repeat="daily",
                times=format_times(rule.times),
                state="active",
                next_fire_at=nxt,
                created_at=now,
                updated_at=now,
            )
        )
        dests.append(dict(schedule_id=sid, position=0, token=f"apns:{i:064x}", active=True))
    for start in range(0, count, 5000):
        async with db.transaction() as conn:
            await conn.execute(insert(schedules), rows[start : start + 5000])
            await conn.execute(insert(schedule_destinations), dests[start : start + 5000])


async def main(url: str | None, rest_seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lantern-bench-"))
    url = url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    db = await Database.open(url)
    store = ScheduleStore(db)
    now = time.time()
    t0 = time.perf_counter()
    await load(db, 100_000, now)
    print(f"database                      {url.split('://')[0]}")
    print(f"loaded 100,000 schedules in   {time.perf_counter() - t0:.1f} s")

    settings = ScheduleSettings()
    lateness: list[float] = []
    seen: dict[tuple[str, int], int] = {}
    clock = ScaledClock(time.time(), 1.0)

    async def deliver(job: DeliveryJob) -> Sent:
        lateness.append(clock.now() - job.scheduled_at)
        seen[(job.schedule_id, job.scheduled_at)] = (
            seen.get((job.schedule_id, job.scheduled_at), 0) + 1
        )
        return Sent()

    scheduler = Scheduler(store, deliver, clock, settings)
    scheduler.start()
    await asyncio.sleep(1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(rest_seconds)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 60
    print(f"CPU at rest (tick {settings.tick_seconds:g} s)      {cpu:.3f} CPU-s per minute")

    # 10,000 schedules become due at the same second, 3 s from now.
    due = int(clock.now()) + 3
    async with db.transaction() as conn:
        await conn.execute(
            update(schedules)
            .where(schedules.c.id.in_([f"sch_{i:016x}" for i in range(0, 100_000, 10)]))
            .values(next_fire_at=due)
        )
    scheduler.wake()
    deadline = time.monotonic() + 120
    while len(lateness) < 10_000 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await scheduler.stop()
    if len(lateness) < 10_000:
        print(f"only {len(lateness)} of 10,000 occurrences fired within 120 s")
    dups = {k: v for k, v in seen.items() if v > 1}
    print(f"distinct occurrences sent      {len(seen)}; sent more than once: {len(dups)}")
    for (sid, at), n in list(dups.items())[:3]:
        print(f"  duplicate {sid} at {at} x{n} (due {due})")
    lateness.sort()
    q = statistics.quantiles(lateness, n=100)
    print(f"10,000 due in the same second: fired {len(lateness)}")
    print(f"  lateness p50 {q[49]:.3f} s   p99 {q[98]:.3f} s   max {lateness[-1]:.3f} s")
    print(f"  (batch {settings.batch_size}, concurrency {settings.concurrency})")
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--rest-seconds", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.db, args.rest_seconds))
