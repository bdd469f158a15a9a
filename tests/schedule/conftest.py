"""Fixtures of the schedule tests: a manual clock, a recording deliverer, SQLite and PostgreSQL
(the shared ``db`` fixture)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from lantern.schedule import ManualClock, Scheduler, ScheduleService
from lantern.schedule.payloads import DeliveryJob
from lantern.settings.schedule import ScheduleSettings
from lantern.store import Database
from lantern.store.schedule import ScheduleStore
from support.postgres import postgres_url

ALL = frozenset({"apns", "gcm", "mailto", "sms", "slack"})


def schemes_allowed(scope: str) -> frozenset[str]:
    return frozenset({"apns", "gcm"}) if scope == "external" else ALL


@dataclass(frozen=True)
class Key:
    id: str
    scope: str = "external"


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str | None = None
    delivery_id: str | None = "d-1"


@dataclass
class FakeDeliverer:
    """Records every completed send; scripted outcomes and blocking per destination."""

    sent: list[DeliveryJob] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    blocked: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: dict[str, asyncio.Event] = field(default_factory=dict)

    async def __call__(self, job: DeliveryJob) -> Outcome:
        if job.destination in self.blocked:
            self.entered.setdefault(job.destination, asyncio.Event()).set()
            await self.blocked[job.destination].wait()
        if job.destination in self.dead:
            return Outcome("dead_token", "Unregistered", None)
        self.sent.append(job)
        return Outcome("delivered")

    def times(self, destination: str | None = None) -> list[int]:
        return [j.scheduled_at for j in self.sent if destination in (None, j.destination)]


POSTGRES_URL = postgres_url()


def at(tz: str, *args: int) -> float:
    """Epoch of a local wall time (must exist)."""
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    name = "lantern_sched_" + secrets.token_hex(4)
    admin = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0] + "/postgres"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at("UTC", 2025, 1, 6, 12, 0))


@pytest.fixture
def deliverer() -> FakeDeliverer:
    return FakeDeliverer()


@pytest.fixture
def settings() -> ScheduleSettings:
    return ScheduleSettings(misfire_grace_seconds=300, claim_lease_seconds=60)


@dataclass
class Harness:
    db: Database
    store: ScheduleStore
    service: ScheduleService
    clock: ManualClock
    deliverer: FakeDeliverer
    settings: ScheduleSettings
    schedulers: list[Scheduler] = field(default_factory=list)

    def scheduler(self, deliverer: FakeDeliverer | None = None) -> Scheduler:
        s = Scheduler(self.store, deliverer or self.deliverer, self.clock, self.settings)
        self.schedulers.append(s)
        return s


@pytest.fixture
async def harness(
    db: Database, clock: ManualClock, deliverer: FakeDeliverer, settings: ScheduleSettings
) -> AsyncIterator[Harness]:
    """The service and schedulers on SQLite, then on PostgreSQL (the ``db`` fixture)."""
    store = ScheduleStore(db)
    h = Harness(
        db, store, ScheduleService(store, clock, schemes_allowed), clock, deliverer, settings
    )
    yield h
    for s in h.schedulers:
        await s.abort()


def body(**overrides: object) -> dict[str, object]:
    """A valid create request (daily at 09:00 in New York) with ``overrides``."""
    b: dict[str, object] = {
        "activity_id": "act-1",
        "participant_id": "U123",
        "destinations": ["apns:" + "ab" * 32],
        "title": "Daily survey",
        "message": "Please take today's survey",
        "timezone": "America/New_York",
        "start": "2025-01-01T00:00:00",
        "repeat": "daily",
        "times": ["09:00"],
    }
    b.update(overrides)
    return {k: v for k, v in b.items() if v is not None}
