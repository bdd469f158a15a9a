"""Fixtures of the jobs tests: every storage test runs on SQLite and on PostgreSQL.

Building and migrating a database costs far more than any test here (a PostgreSQL migration
~1.5 s), so the session migrates one template per database and every test gets a copy: a byte
copy of the SQLite file (same schema, same pragmas: WAL and synchronous=FULL are set per
connection by :class:`Database`), ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobs.databases import admin, database_url, migrate, run_apart
from jobs.kit import Kit
from lantern.store import Database


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs-template") / "template.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database migrated once per session; tests get copies of it."""
    name = f"lantern_tpl_{secrets.token_hex(6)}"
    run_apart(admin(f'CREATE DATABASE "{name}"'))
    try:
        run_apart(migrate(database_url(name)))
        yield name
    finally:
        run_apart(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(
    request: pytest.FixtureRequest, migrated_template: Path, tmp_path: Path
) -> AsyncIterator[Database]:
    """A migrated database, once on SQLite (a temporary file) and once on PostgreSQL (a
    database of its own on the local server)."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(migrated_template, path)
        database = await Database.open(f"sqlite+aiosqlite:///{path}", migrate=False)
        yield database
        await database.close()
        return
    template = request.getfixturevalue("postgres_template")
    name = f"lantern_{secrets.token_hex(6)}"
    await admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        database = await Database.open(database_url(name), migrate=False)
        yield database
        await database.close()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def kit(db: Database, tmp_path: Path) -> AsyncIterator[Kit]:
    kit = Kit(db, tmp_path)
    yield kit
    await kit.close()
