"""A fresh PostgreSQL database per test, on the local server (skips only outside CI)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1/test"


def postgres_url() -> str:
    return os.environ.get("LANTERN_TEST_POSTGRES_URL", DEFAULT_URL)


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create ``lantern_<random>`` on the server, yield its SQLAlchemy URL, drop it after.

    Without a reachable server the test is skipped with how to start one, except under
    ``CI=true`` where the server is part of the machine and its absence is a failure.
    """
    import asyncpg

    base = make_url(postgres_url())
    dsn = base.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(
            f"PostgreSQL not reachable at {base.host}:{base.port or 5432} ({exc}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' or set "
            "LANTERN_TEST_POSTGRES_URL"
        )
    name = f"lantern_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
