"""PostgreSQL databases for the jobs tests: a template migrated once, copies of it per test
(see conftest.py), and the helpers to make and drop them from sync or async code."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from lantern.store import Database
from support.postgres import postgres_url


async def migrate(url: str) -> None:
    db = await Database.open(url)
    if db.is_sqlite:
        async with db.connect() as conn:
            # Fold the write-ahead log into the file, so the file alone is the whole database.
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    await db.close()


def server_url() -> URL:
    return make_url(postgres_url())


async def admin(sql: str) -> None:
    """Run ``sql`` on the server's maintenance database (skips the test, outside CI, when no
    server answers: see support.postgres)."""
    import asyncpg

    base = server_url()
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


def run_apart(coroutine: Coroutine[Any, Any, None]) -> None:
    # Requested by the first PostgreSQL test from inside its event loop: run on a loop of its own.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, coroutine).result()


def database_url(name: str) -> str:
    return server_url().set(database=name).render_as_string(hide_password=False)


def copy_postgres_template(template: str) -> str:
    """A new database copied from ``template``; its URL (for a test's own server process)."""
    name = f"lantern_{secrets.token_hex(6)}"
    run_apart(admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return database_url(name)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    run_apart(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
