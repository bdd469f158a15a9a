"""Fixtures of the jobs tests: every storage test runs on SQLite and on PostgreSQL.

Building and migrating a database costs far more than any test here (a PostgreSQL migration
~1.5 s), so the session migrates one template per database and every test gets a copy: a byte
copy of the SQLite file (same schema, same pragmas: WAL and synchronous=FULL are set per
connection by :class:`Database`), ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from jobs.kit import Kit
from lantern.store import Database
from support.postgres import postgres_url


async def _migrate(url: str) -> None:
    db = await Database.open(url)
    if db.is_sqlite:
        async with db.connect() as conn:
            # Fold the write-ahead log into the file, so the file alone is the whole database.
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    await db.close()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs-template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def _server() -> URL:
    return make_url(postgres_url())


async def _admin(sql: str) -> None:
    """Run ``sql`` on the server's maintenance database (skips the test, outside CI, when no
    server answers: see support.postgres)."""
    import asyncpg

    base = _server()
    dsn = base.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable at {base.host}:{base.port or 5432} ({exc})")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run_apart(coroutine: Coroutine[Any, Any, None]) -> None:
    # Requested by the first PostgreSQL test from inside its event loop: run on a loop of its own.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database migrated once per session; tests get copies of it."""
    name = f"lantern_tpl_{secrets.token_hex(6)}"
    _run_apart(_admin(f'CREATE DATABASE "{name}"'))
    try:
        _run_apart(_migrate(_server().set(database=name).render_as_string(hide_password=False)))
        yield name
    finally:
        _run_apart(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        url = _server().set(database=name).render_as_string(hide_password=False)
        database = await Database.open(url, migrate=False)
        yield database
        await database.close()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def kit(db: Database, tmp_path: Path) -> AsyncIterator[Kit]:
    kit = Kit(db, tmp_path)
    yield kit
    await kit.close()
