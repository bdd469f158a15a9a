"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import hypothesis
import pytest

from lantern.audit import SYSTEM, acting_as
from lantern.store import Database
from support.postgres import fresh_postgres_database

# Imported here, at collection: otherwise hypothesis' pytest plugin imports it only in the final
# summary, deep in pytest's hooks, where CPython 3.11.7's parser can fail the assertion
# rewriter with "SystemError: AST constructor recursion depth mismatch" (seen running
# tests/push/test_h2client.py alone, after every test passed).

# No per-example deadline: on a loaded two-core machine an example's first run (imports,
# SQLite files) can take longer than hypothesis' 200 ms default without anything being wrong.
hypothesis.settings.register_profile("lantern", deadline=None)
hypothesis.settings.load_profile("lantern")

POSTGRES_URL = os.environ.get(
    "LANTERN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1/test"
)


@pytest.fixture(autouse=True)
def _audit_actor_is_system() -> Iterator[None]:
    """Every test starts acting as ``system``: a CLI command run in-process (CliRunner) sets
    the actor for the rest of its context, which would otherwise leak into later tests."""
    with acting_as(SYSTEM):
        yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty directory for a Lantern data directory (not yet created)."""
    return tmp_path / "lantern-data"


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database in a temporary directory."""
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    yield db
    await db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database, once on SQLite (a temporary file) and once on PostgreSQL (a fresh
    database on the local server; see support.postgres): storage tests run on both."""
    if request.param == "sqlite":
        database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        yield database
        await database.close()
        return
    async with fresh_postgres_database() as url:
        database = await Database.open(url)
        yield database
        await database.close()


# Multi-node clusters: each test runs 2-3 `lantern serve` nodes against deadlines (found-dead
# bounds, forwarding within N s). Under `pytest -n 2` a second worker's load makes them miss
# those deadlines, so scripts/check runs them after the parallel part, one at a time
# (`-m serial`).
SERIAL_DIRS = ("cluster", "cluster_platform")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests under :data:`SERIAL_DIRS` ``serial``."""
    here = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(here).parts if item.path.is_relative_to(here) else ()
        if parts and parts[0] in SERIAL_DIRS:
            item.add_marker(pytest.mark.serial)
