"""The scheduler loop: exactly once, misfires, restarts, dead tokens, several processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lantern.schedule import ManualClock, Scheduler, ScheduleService
from lantern.settings.schedule import ScheduleSettings
from lantern.store import Database
from lantern.store.schedule import ScheduleStore

from .conftest import FakeDeliverer, Harness, Key, at, body, schemes_allowed


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness


KEY = Key("key_a")
APNS = "apns:" + "ab" * 32
APNS2 = "apns:" + "cd" * 32
GCM = "gcm:fcm-token:with-colon"
NY = "America/New_York"


async def create(h: Harness, **overrides: object) -> str:
    view = await h.service.create(KEY, body(**overrides))
    return str(view["id"])


async def test_fires_each_occurrence_once_and_keeps_history_without_content(h: Harness) -> None:
    sid = await create(h)
    s = h.scheduler()
    assert await s.run_once() == 0  # created at 2025-01-06 07:00 NY: nothing due yet
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    assert await s.run_once() == 1
    assert await s.run_once() == 0  # same instant again: nothing new
    h.clock.set(at(NY, 2025, 1, 7, 9, 0, 1))
    assert await s.run_once() == 1
    assert h.deliverer.times() == [int(at(NY, 2025, 1, 6, 9)), int(at(NY, 2025, 1, 7, 9))]
    history = await h.service.history(KEY, sid)
    assert [(o["scheduled_at"], o["status"]) for o in history] == [
        ("2025-01-07T09:00:00-05:00", "fired"),
        ("2025-01-06T09:00:00-05:00", "fired"),
    ]
    assert history[0]["fired_at"] == "2025-01-07T14:00:01Z"
    assert history[0]["results"] == [{"destination": 0, "status": "delivered", "reason": None}]
    text = json.dumps(history)
    assert "survey" not in text and "ab" * 32 not in text


async def test_dst_change_is_watched_firing_at_local_time(h: Harness) -> None:
    h.clock.set(at(NY, 2025, 3, 7, 12, 0))
    await create(h, times=["02:30"], start="2025-03-07T12:00:00")
    s = h.scheduler()
    for day in (8, 9, 10):
        for step in range(0, 4 * 3600, 120):  # watch each night in 2-minute steps
            h.clock.set(at("UTC", 2025, 3, day, 5, 0) + step)
            await s.run_once()
    assert [t - int(at("UTC", 2025, 3, 8)) for t in h.deliverer.times()] == [
        7 * 3600 + 1800,  # 03-08 02:30 EST = 07:30Z
        86400 + 7 * 3600,  # 03-09 02:30 does not exist: 03:00 EDT = 07:00Z
        2 * 86400 + 6 * 3600 + 1800,  # 03-10 02:30 EDT = 06:30Z
    ]


async def test_misfire_inside_grace_fires_late(h: Harness) -> None:
    sid = await create(h)
    h.clock.set(at(NY, 2025, 1, 6, 9, 0) + 299)  # the scheduler was down 4m59s
    assert await h.scheduler().run_once() == 1
    (occ,) = await h.service.history(KEY, sid)
    assert occ["status"] == "fired" and occ["fired_at"] == "2025-01-06T14:04:59Z"


async def test_misfire_outside_grace_is_skipped_and_recorded(h: Harness) -> None:
    sid = await create(h)
    h.clock.set(at(NY, 2025, 1, 6, 9, 0) + 301)
    s = h.scheduler()
    await s.run_once()
    assert h.deliverer.sent == []
    (occ,) = await h.service.history(KEY, sid)
    assert occ["status"] == "missed" and "late by 301 s" in occ["detail"]
    h.clock.set(at(NY, 2025, 1, 7, 9, 0))
    await s.run_once()  # the next one fires normally
    assert h.deliverer.times() == [int(at(NY, 2025, 1, 7, 9))]


async def test_long_outage_records_a_bounded_number_of_misses(h: Harness) -> None:
    sid = await create(h, repeat="hourly", times=["00:00"])
    h.clock.set(at(NY, 2025, 1, 9, 10, 2))  # three days down
    await h.scheduler().run_once()
    history = await h.service.history(KEY, sid, limit=1000)
    assert [o["status"] for o in history] == ["fired"] + ["missed"] * 24
    assert history[0]["scheduled_at"] == "2025-01-09T10:00:00-05:00"  # 2 min late: inside grace
    assert "not listed" in history[1]["detail"]
    view = await h.service.get(KEY, sid)
    assert view["next_fire_times"][0] == "2025-01-09T11:00:00-05:00"


async def test_restart_in_the_middle_of_firing_neither_duplicates_nor_loses(h: Harness) -> None:
    sid = await create(h, destinations=[APNS, APNS2, GCM])
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    first = FakeDeliverer(sent=h.deliverer.sent, blocked={APNS2: asyncio.Event()})
    a = h.scheduler(first)
    run = asyncio.create_task(a.run_once())
    first.entered[APNS2] = asyncio.Event()
    await asyncio.wait_for(first.entered[APNS2].wait(), 5)  # APNS sent, APNS2 in flight
    await a.abort()  # killed: APNS2's send never completed, GCM never started
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    b = h.scheduler()
    assert await b.run_once() == 0  # lease still held by the dead process
    h.clock.advance(61)  # lease (60 s) expired; still inside the grace period
    assert await b.run_once() == 1
    assert Counter(j.destination for j in h.deliverer.sent) == {APNS: 1, APNS2: 1, GCM: 1}
    (occ,) = await h.service.history(KEY, sid)
    assert occ["status"] == "fired"
    assert [r["status"] for r in occ["results"]] == ["delivered"] * 3


async def test_clean_stop_hands_unfinished_occurrences_back_at_once(h: Harness) -> None:
    await create(h, destinations=[APNS, APNS2])
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    first = FakeDeliverer(sent=h.deliverer.sent, blocked={APNS2: asyncio.Event()})
    first.entered[APNS2] = asyncio.Event()
    a = h.scheduler(first)
    a.start()
    await asyncio.wait_for(first.entered[APNS2].wait(), 5)
    await a.stop(drain_timeout=0.05)  # APNS2 still stuck: cancelled, claim released
    assert await h.scheduler().run_once() == 1  # no lease wait
    assert Counter(j.destination for j in h.deliverer.sent) == {APNS: 1, APNS2: 1}


async def test_dead_token_deactivates_that_destination_then_stops_the_schedule(
    h: Harness,
) -> None:
    sid = await create(h, destinations=[APNS, GCM])
    h.deliverer.dead.add(APNS)
    s = h.scheduler()
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    await s.run_once()
    (occ,) = await h.service.history(KEY, sid)
    assert occ["status"] == "partial"
    assert occ["results"] == [
        {"destination": 0, "status": "dead_token", "reason": "Unregistered"},
        {"destination": 1, "status": "delivered", "reason": None},
    ]
    view = await h.service.get(KEY, sid)
    assert [(d["active"], d["deactivated_reason"]) for d in view["destinations"]] == [
        (False, "Unregistered"),
        (True, None),
    ]
    h.clock.set(at(NY, 2025, 1, 7, 9, 0))
    await s.run_once()
    assert [j.destination for j in h.deliverer.sent] == [GCM, GCM]  # the dead one is not retried
    h.deliverer.dead.add(GCM)
    h.clock.set(at(NY, 2025, 1, 8, 9, 0))
    await s.run_once()
    view = await h.service.get(KEY, sid)
    assert view["state"] == "stopped" and view["next_fire_times"] == []


async def test_paused_schedule_does_not_fire_and_resumes_from_now(h: Harness) -> None:
    sid = await create(h)
    assert (await h.service.pause(KEY, sid))["state"] == "paused"
    s = h.scheduler()
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    await s.run_once()
    assert h.deliverer.sent == []
    view = await h.service.resume(KEY, sid)
    assert view["state"] == "active"
    assert view["next_fire_times"][0] == "2025-01-07T09:00:00-05:00"  # today's is not made up
    assert await h.service.history(KEY, sid) == []


async def test_once_schedule_fires_once_then_finishes(h: Harness) -> None:
    sid = await create(h, repeat="none", times=None, start="2025-01-06T10:00:00")
    s = h.scheduler()
    h.clock.set(at(NY, 2025, 1, 6, 10, 0))
    await s.run_once()
    h.clock.advance(86400)
    await s.run_once()
    assert len(h.deliverer.sent) == 1
    assert (await h.service.get(KEY, sid))["state"] == "finished"


async def test_two_schedulers_in_one_loop_share_work_without_duplicates(db: Database) -> None:
    clock = ManualClock(at(NY, 2025, 1, 6, 8, 0))
    store = ScheduleStore(db)
    service = ScheduleService(store, clock, schemes_allowed)
    for i in range(60):
        await service.create(KEY, body(participant_id=f"p{i}"))
    clock.set(at(NY, 2025, 1, 6, 9, 0))
    sent = FakeDeliverer()
    settings = ScheduleSettings(batch_size=7, concurrency=10)
    a, b = (Scheduler(store, sent, clock, settings) for _ in range(2))
    counts = await asyncio.gather(a.run_once(), b.run_once())
    assert sum(counts) == 60
    assert len(sent.sent) == 60 and len({j.schedule_id for j in sent.sent}) == 60
    await a.stop()
    await b.stop()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_two_scheduler_processes_on_one_database(
    kind: str, tmp_path: Path, pg_url: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite" else pg_url
    db = await Database.open(url)
    try:
        store = ScheduleStore(db)
        clock = ManualClock(at(NY, 2025, 1, 6, 8, 0))
        service = ScheduleService(store, clock, schemes_allowed)
        key = Key("key_" + kind + tmp_path.name[-8:])
        ids = {(await service.create(key, body(participant_id=f"p{i}")))["id"] for i in range(150)}
        out, go = tmp_path / "sent.txt", tmp_path / "go"
        worker = Path(__file__).with_name("scheduler_worker.py")
        now = str(at(NY, 2025, 1, 6, 9, 0, 30))
        procs = [
            subprocess.Popen([sys.executable, str(worker), url, now, str(out), str(go)])
            for _ in range(2)
        ]
        go.touch()
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
        lines = [ln.split() for ln in out.read_text().splitlines()]
        mine = [ln for ln in lines if ln[0] in ids]
        assert Counter(ln[0] for ln in mine) == dict.fromkeys(ids, 1)  # each fired exactly once
        history = await service.history(key, sorted(ids)[0])
        assert [o["status"] for o in history] == ["fired"]
    finally:
        await db.close()
