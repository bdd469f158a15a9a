"""Fixtures of the audit tests: a migrated database on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lantern.store import Database
from support.postgres import fresh_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database: SQLite in a temporary file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
        yield database
        await database.close()
        return
    async with fresh_postgres_database() as url:
        database = await Database.open(url)
        yield database
        await database.close()
