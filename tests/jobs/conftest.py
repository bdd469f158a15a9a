"""Fixtures of the jobs tests.

Building and migrating a SQLite database costs far more than any test here, so the session
migrates one template file and every test gets a byte copy of it (same schema, same pragmas:
WAL and synchronous=FULL are set per connection by :class:`Database`).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobs.kit import Kit
from lantern.store import Database


async def _migrate(path: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    async with db.connect() as conn:
        # Fold the write-ahead log into the file, so the file alone is the whole database.
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    await db.close()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs-template") / "template.db"
    asyncio.run(_migrate(path))
    return path


@pytest.fixture
async def sqlite_db(migrated_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database in a temporary directory (a copy of the session template)."""
    path = tmp_path / "test.db"
    shutil.copy(migrated_template, path)
    db = await Database.open(f"sqlite+aiosqlite:///{path}", migrate=False)
    yield db
    await db.close()


@pytest.fixture
async def kit(sqlite_db: Database, tmp_path: Path) -> AsyncIterator[Kit]:
    kit = Kit(sqlite_db, tmp_path)
    yield kit
    await kit.close()
