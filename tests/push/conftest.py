"""Fixtures of the app gateway tests: stand-ins, keys, a dispatcher on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lantern.push.deliverylog import DeliveryLog
from lantern.push.dispatch import PushDispatcher
from lantern.push.keys import KeyService
from lantern.push.providers.apns import APNsProvider
from lantern.push.providers.base import PushProvider
from lantern.push.retry import RetryPolicy
from lantern.settings.push import APNsSettings
from lantern.store import Database
from lantern.store.push import DeliveryStore
from support.apns_standin import APNsStandIn, SigningKey

DEVICE = "a1" * 32


@dataclass
class FakeClock:
    """Monotonic and wall time that only move when told; ``sleep`` advances them."""

    now: float = 1_800_000_000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.create(tmp_path_factory.mktemp("apns-key"))


@pytest.fixture
def apns_standin(tmp_path: Path, signing_key: SigningKey) -> Iterator[APNsStandIn]:
    with APNsStandIn(tmp_path / "apns-tls", signing_key) as standin:
        yield standin


def apns_settings(standin: APNsStandIn, **overrides: object) -> APNsSettings:
    values: dict[str, object] = {
        "key_file": standin.key.path,
        "key_id": standin.key.key_id,
        "team_id": standin.key.team_id,
        "topic": standin.topic,
        "host": standin.host,
        "ca_file": standin.ca_file,
    }
    values.update(overrides)
    return APNsSettings.model_validate(values)


@pytest.fixture
async def keys(sqlite_db: Database) -> KeyService:
    return KeyService(sqlite_db)


def make_dispatcher(
    db: Database,
    providers: dict[str, PushProvider],
    clock: FakeClock,
    budget: float = 10.0,
    default_rate: int | None = None,
) -> PushDispatcher:
    return PushDispatcher(
        providers,
        DeliveryLog(DeliveryStore(db)),
        address_key=b"k" * 32,
        retry=RetryPolicy(budget=budget),
        default_rate_per_minute=default_rate,
        clock=clock,
        sleep=clock.sleep,
    )


@pytest.fixture
async def apns_dispatcher(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock
) -> AsyncIterator[PushDispatcher]:
    provider = APNsProvider(apns_settings(apns_standin))
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock)
    await dispatcher.start()
    yield dispatcher
    await dispatcher.close()
