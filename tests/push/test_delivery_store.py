"""The app gateway's storage on SQLite and PostgreSQL (the ``db`` fixture): API keys, the
delivery log's store, and the group-committed delivery log, failure path included."""

from __future__ import annotations

import asyncio

import pytest

from conftest import FakeClock
from lantern.push.deliverylog import DeliveryLog, DeliveryNotLogged
from lantern.push.errors import PushError
from lantern.push.keys import KeyNotFound, KeyService, hash_secret
from lantern.push.queries import PushQueries
from lantern.store import Database, StoreError
from lantern.store.push import ApiKeyRow, ApiKeyStore, DeliveryRow, DeliveryStore


def rows(n: int, start: int = 0) -> list[DeliveryRow]:
    return [
        DeliveryRow(
            id=f"dlv_{i:04d}",
            key_id=None if i % 3 else "key_a",
            scheme="apns",
            address_hash=f"{i:032x}",
            status="delivered" if i % 2 else "dead_token",
            http_status=200 if i % 2 else 410,
            reason=None if i % 2 else "Unregistered",
            attempts=1 + i % 3,
            latency_ms=1.5 * i,
            created_at=1_700_000_000.0 + i,
        )
        for i in range(start, start + n)
    ]


async def test_a_batch_is_stored_and_read_back_unchanged(db: Database) -> None:
    store = DeliveryStore(db)
    written = rows(50)
    await store.insert_many(written)
    await store.insert_many([])
    read = await PushQueries(db).deliveries(limit=100)
    assert sorted(read, key=lambda r: r.id) == written
    newest_dead = await PushQueries(db).deliveries(status="dead_token", limit=3)
    assert [r.id for r in newest_dead] == ["dlv_0048", "dlv_0046", "dlv_0044"]
    by_key = await PushQueries(db).deliveries(key_id="key_a", limit=100)
    assert {r.id for r in by_key} == {r.id for r in written if r.key_id == "key_a"}


async def test_a_failing_batch_stores_nothing(db: Database) -> None:
    store = DeliveryStore(db)
    await store.insert_many(rows(3))
    with pytest.raises(StoreError):
        await store.insert_many([*rows(2, start=3), rows(1)[0]])  # the last one repeats an id
    assert len(await store.recent(limit=100)) == 3


async def test_a_large_batch_is_split_into_statements_within_the_variable_limit(
    db: Database,
) -> None:
    store = DeliveryStore(db)
    await store.insert_many(rows(3001))
    assert len(await store.recent(limit=5000)) == 3001


async def test_concurrent_pushes_share_a_transaction_and_each_returns_after_commit(
    db: Database,
) -> None:
    log = DeliveryLog(DeliveryStore(db), batch_max=1000)
    written = rows(300)
    await asyncio.gather(*(log.record(r) for r in written))
    assert log.writer.batches < 300  # group-committed
    assert log.writer.committed == 300
    stored = await PushQueries(db).deliveries(limit=1000)
    assert sorted(stored, key=lambda r: r.id) == written
    await log.close()


async def test_a_batch_that_cannot_commit_fails_every_push_in_it_and_stores_none(
    db: Database,
) -> None:
    log = DeliveryLog(DeliveryStore(db))
    await log.record(rows(1)[0])
    # One batch: the third row repeats the id of the row stored above, so its transaction fails.
    batch = [*rows(2, start=1), rows(1)[0], *rows(2, start=3)]
    outcomes = await asyncio.gather(*(log.record(r) for r in batch), return_exceptions=True)
    assert all(isinstance(o, DeliveryNotLogged) for o in outcomes)
    assert log.writer.failed_batches == 1
    assert [r.id for r in await PushQueries(db).deliveries(limit=100)] == ["dlv_0000"]
    # The writer goes on: the next pushes are logged.
    await asyncio.gather(*(log.record(r) for r in rows(2, start=1)))
    assert len(await PushQueries(db).deliveries(limit=100)) == 3
    await log.close()
    with pytest.raises(DeliveryNotLogged):  # closed: refused, not silently dropped
        await log.record(rows(1, start=9)[0])


async def test_api_keys_are_stored_found_and_revoked_the_same(db: Database) -> None:
    clock = FakeClock()
    keys = KeyService(db, clock=clock)
    key, secret = await keys.create("Org A", "external", rate_per_minute=60)
    assert await keys.authenticate(secret) == key
    (row,) = await PushQueries(db).api_keys()
    assert row.secret_hash == hash_secret(secret) and row.rate_per_minute == 60
    new_key, new_secret = await keys.rotate(key.id, grace_seconds=30)
    assert await keys.authenticate(secret) == key  # grace period
    clock.advance(31)
    assert await keys.authenticate(secret) is None
    assert await keys.authenticate(new_secret) == new_key
    old = await keys.get(key.id)
    assert old.replaced_by == new_key.id and old.revoked_at == pytest.approx(clock() - 1)
    with pytest.raises(PushError):
        await keys.revoke(key.id)
    with pytest.raises(KeyNotFound):
        await keys.get("key_nope")
    assert {r.id for r in await PushQueries(db).api_keys()} == {key.id, new_key.id}


async def test_a_duplicate_key_is_refused_and_leaves_no_row(db: Database) -> None:
    store = ApiKeyStore(db)
    row = ApiKeyRow("key_1", "n", "external", "sha256:x", None, 1.0, None, None, None, "cli")
    await store.insert(row)
    with pytest.raises(StoreError):
        await store.insert(ApiKeyRow("key_2", *[getattr(row, f) for f in _AFTER_ID]))
    assert [r.id for r in await store.all()] == ["key_1"]
    assert await store.revoke("key_1", 5.0, "n") is True
    assert await store.revoke("key_1", 9.0, "later") is False  # never postponed
    assert (await store.by_id("key_1")).revoked_at == 5.0  # type: ignore[union-attr]


_AFTER_ID = (
    "name",
    "scope",
    "secret_hash",
    "rate_per_minute",
    "created_at",
    "revoked_at",
    "revoke_note",
    "replaced_by",
    "source",
)
