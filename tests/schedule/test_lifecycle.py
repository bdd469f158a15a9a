"""Scheduler lifecycle: lease renewal on a fake clock, prompt stop, the owning key's rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest
from sqlalchemy import update

from lantern.push.deliverylog import DeliveryLog
from lantern.push.dispatch import PushDispatcher
from lantern.push.keys import KeyService
from lantern.push.providers.base import PreparedMessage, PushProvider
from lantern.runtime.schedule import DispatcherDeliver
from lantern.schedule import ManualClock, Scheduler, ScheduleService, SystemClock
from lantern.settings.schedule import ScheduleSettings
from lantern.store import Database
from lantern.store.push import DeliveryStore
from lantern.store.schedule import ScheduleStore
from lantern.store.schema.schedule import schedule_occurrences

from .conftest import FakeDeliverer, Harness, Key, at, body, schemes_allowed

KEY = Key("key_a")
APNS = "apns:" + "ab" * 32
APNS2 = "apns:" + "cd" * 32
NY = "America/New_York"


class WatchedClock(ManualClock):
    """A manual clock that lets a test wait until someone waits for ``seconds`` on it."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.waits: list[float] = []
        self._waited = asyncio.Event()

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        self.waits.append(seconds)
        self._waited.set()
        await super().wait(seconds, wake)

    async def waiting(self, seconds: float, count: int) -> None:
        """Return once ``count`` waits of ``seconds`` (±1 s) have started since creation."""
        while sum(1 for w in self.waits if abs(w - seconds) <= 1) < count:
            self._waited.clear()
            await asyncio.wait_for(self._waited.wait(), 5)


# -- leases -------------------------------------------------------------------------------------


async def test_a_send_longer_than_the_lease_keeps_its_claim(harness: Harness) -> None:
    h = harness
    await h.service.create(KEY, body(destinations=[APNS]))
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    slow = FakeDeliverer(sent=h.deliverer.sent, blocked={APNS: asyncio.Event()})
    slow.entered[APNS] = asyncio.Event()
    a = h.scheduler(slow)
    run = asyncio.create_task(a.run_once())
    await asyncio.wait_for(slow.entered[APNS].wait(), 5)  # the send is in progress
    b = h.scheduler()
    for _ in range(6):  # 6 x 25 s = 150 s: 2.5 leases of 60 s, renewed every 20 s
        a.leases_renewed.clear()
        h.clock.advance(25)
        await asyncio.wait_for(a.leases_renewed.wait(), 5)
        assert await b.run_once() == 0  # nothing to take over: the lease was renewed
    assert a.lease_renewals == 6
    slow.blocked[APNS].set()
    assert await asyncio.wait_for(run, 5) == 1
    assert [j.destination for j in h.deliverer.sent] == [APNS]  # sent once, by a only


async def test_a_claim_taken_over_after_a_stall_stops_sending_here(harness: Harness) -> None:
    h = harness
    sid = await h.service.create(KEY, body(destinations=[APNS, APNS2]))
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    slow = FakeDeliverer(sent=h.deliverer.sent, blocked={APNS: asyncio.Event()})
    slow.entered[APNS] = asyncio.Event()
    a = h.scheduler(slow)
    run = asyncio.create_task(a.run_once())
    await asyncio.wait_for(slow.entered[APNS].wait(), 5)
    async with h.db.transaction() as conn:  # another scheduler took it over meanwhile
        await conn.execute(update(schedule_occurrences).values(claimed_by="sched-other"))
    await a.renew_leases()
    await asyncio.wait_for(run, 5)  # a's remaining sends were cancelled, not made
    slow.blocked[APNS].set()
    assert h.deliverer.sent == []
    (occ,) = await h.service.history(KEY, str(sid["id"]))
    assert occ["status"] == "claimed" and occ["results"] == []  # the new owner finishes it


# -- stop ---------------------------------------------------------------------------------------


class WatchedSystemClock(SystemClock):
    def __init__(self) -> None:
        self.sleeping = asyncio.Event()

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        if seconds >= 60:
            self.sleeping.set()
        await super().wait(seconds, wake)


async def test_stop_at_rest_is_prompt_even_with_a_long_tick(sqlite_db: Database) -> None:
    settings = ScheduleSettings(tick_seconds=60, claim_lease_seconds=600)
    clock = WatchedSystemClock()
    s = Scheduler(ScheduleStore(sqlite_db), FakeDeliverer(), clock, settings)
    s.start()
    await asyncio.wait_for(clock.sleeping.wait(), 5)  # the loop sleeps for up to 60 s
    started = time.monotonic()
    await asyncio.wait_for(s.stop(), 5)
    assert time.monotonic() - started < 1.0


async def test_stop_abandons_sends_not_started_and_hands_them_back(harness: Harness) -> None:
    h = harness
    for i in range(30):
        await h.service.create(KEY, body(participant_id=f"p{i}", destinations=[f"apns:{i:064x}"]))
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    h.settings = ScheduleSettings(concurrency=1, misfire_grace_seconds=300)
    first = f"apns:{0:064x}"
    stuck = FakeDeliverer(sent=h.deliverer.sent, blocked={first: asyncio.Event()})
    stuck.entered[first] = asyncio.Event()
    a = h.scheduler(stuck)
    a.start()
    await asyncio.wait_for(stuck.entered[first].wait(), 5)  # 1 sending, 29 queued behind it
    started = time.monotonic()
    stopping = asyncio.create_task(a.stop(drain_timeout=5))
    stuck.blocked[first].set()  # the send in progress finishes; the queued ones never start
    await asyncio.wait_for(stopping, 5)
    assert time.monotonic() - started < 1.0
    assert [j.destination for j in h.deliverer.sent] == [first]
    b = h.scheduler()
    assert await b.run_once() == 29  # handed back at once, no lease wait
    assert sorted(j.participant_id for j in h.deliverer.sent) == sorted(f"p{i}" for i in range(30))


# -- rate limit of the owning key ---------------------------------------------------------------


class RecordingAPNs(PushProvider):
    scheme: ClassVar[str] = "apns"
    name: ClassVar[str] = "apns"

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent: list[tuple[str, float]] = []  # (address, clock time)

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        return PreparedMessage(address, payload, {})

    async def send(self, message: PreparedMessage) -> None:
        self.sent.append((message.address, self.clock.now()))


@pytest.fixture
async def dispatcher(
    sqlite_db: Database,
) -> AsyncIterator[tuple[PushDispatcher, RecordingAPNs, WatchedClock]]:
    clock = WatchedClock(at(NY, 2025, 1, 6, 8, 0))
    provider = RecordingAPNs(clock)
    d = PushDispatcher(
        {"apns": provider},
        DeliveryLog(DeliveryStore(sqlite_db)),
        address_key=b"k" * 32,
        clock=clock.now,  # the rate limiter's buckets refill on the scheduler's clock
    )
    await d.start()
    yield d, provider, clock
    await d.close()


@pytest.mark.parametrize("grace", [300.0, 45.0])
async def test_scheduled_sends_count_against_the_keys_rate_limit_like_push(
    sqlite_db: Database,
    dispatcher: tuple[PushDispatcher, RecordingAPNs, WatchedClock],
    grace: float,
) -> None:
    d, provider, clock = dispatcher
    keys = KeyService(sqlite_db)
    key, _ = await keys.create("research server", "external", rate_per_minute=2)
    store = ScheduleStore(sqlite_db)
    service = ScheduleService(store, clock, schemes_allowed)
    ids = [
        str((await service.create(key, body(participant_id=f"p{i}", destinations=[APNS])))["id"])
        for i in range(3)
    ]
    clock.set(at(NY, 2025, 1, 6, 9, 0))
    # One /push by the same key first: it takes one of the two sends allowed per minute.
    assert (await d.dispatch(key, APNS2, {"aps": {}})).status == "delivered"
    settings = ScheduleSettings(misfire_grace_seconds=grace, claim_lease_seconds=600)
    s = Scheduler(store, DispatcherDeliver(d, keys), clock, settings)
    try:
        run = asyncio.create_task(s.run_once())
        await clock.waiting(30, 2)  # one sent; two refused by the limiter, waiting 30 s
        assert len(provider.sent) == 2
        clock.advance(30)
        if grace == 300:
            await clock.waiting(30, 3)  # one more sent; the last refused again, waits
            clock.advance(30)
        assert await asyncio.wait_for(run, 5) == 3
    finally:
        await s.stop()
    nine = at(NY, 2025, 1, 6, 9, 0)
    statuses = sorted([(await service.history(key, i))[0]["status"] for i in ids])
    if grace == 300:  # every retry still inside the grace period
        assert [t - nine for _, t in provider.sent[1:]] == [0, 30, 60]
        assert statuses == ["fired"] * 3
    else:  # the third would be 60 s late: recorded as rate limited, not sent
        assert [t - nine for _, t in provider.sent[1:]] == [0, 30]
        assert statuses == ["failed", "fired", "fired"]
        histories = [(await service.history(key, i))[0] for i in ids]
        (failed,) = [o for o in histories if o["status"] == "failed"]
        assert [r["status"] for r in failed["results"]] == ["rate_limited"]
