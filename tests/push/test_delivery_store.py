"""The delivery log's store: a batch of rows is appended in one transaction and read back the
same on a SQLite file (the driver's executemany) and on PostgreSQL (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from lantern.store import Database
from lantern.store.push import DeliveryRow, DeliveryStore
from support.postgres import fresh_postgres_database


def rows(n: int) -> list[DeliveryRow]:
    return [
        DeliveryRow(
            id=f"dlv_{i:04d}",
            key_id=None,
            scheme="apns",
            address_hash=f"{i:032x}",
            status="delivered" if i % 2 else "dead_token",
            http_status=200 if i % 2 else 410,
            reason=None if i % 2 else "Unregistered",
            attempts=1 + i % 3,
            latency_ms=1.5 * i,
            created_at=1_700_000_000.0 + i,
        )
        for i in range(n)
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'log.db'}")
        yield database
        await database.close()
    else:
        async with fresh_postgres_database() as url:
            database = await Database.open(url)
            yield database
            await database.close()


async def test_a_batch_is_stored_and_read_back_unchanged(db: Database) -> None:
    store = DeliveryStore(db)
    written = rows(50)
    await store.insert_many(written)
    await store.insert_many([])
    await store.close()
    read = await store.recent(limit=100)
    assert sorted(read, key=lambda r: r.id) == written
    assert [r.id for r in await store.recent(status="dead_token", limit=3)] == [
        "dlv_0048",
        "dlv_0046",
        "dlv_0044",
    ]


async def test_a_failing_batch_stores_nothing(db: Database) -> None:
    store = DeliveryStore(db)
    await store.insert_many(rows(3))
    with pytest.raises(IntegrityError):
        await store.insert_many([*rows(5)[3:], rows(1)[0]])  # the last one repeats an id
    await store.close()
    assert len(await store.recent(limit=100)) == 3
