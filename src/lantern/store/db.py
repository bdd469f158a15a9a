"""The database handle: one async engine, SQLite tuned for durability, migrations on open."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lantern.errors import LanternError

InTransaction = Callable[[AsyncConnection], Awaitable[None]]
"""Extra work a caller hands a repository method to do inside that method's transaction (e.g.
writing the audit entry of the change, so both commit or neither does)."""


class StoreError(LanternError):
    """The store cannot do what was asked (unreachable database, failed migration, conflict)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. synchronous=FULL: a commit survives power loss too,
    # which is what "acknowledge after durable" promises; writers group commits for throughput.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """An async engine plus helpers. Open with :meth:`open`, which migrates to the latest schema."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        """Connect to ``url`` (creating a SQLite file's directory) and upgrade the schema."""
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                if "?" not in path and not path.startswith("file:"):
                    _create_private(Path(path))
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        # Parameters (tokens, messages, patient ids) never appear in SQLAlchemy's statement log
        # nor in the text of its exceptions, which Lantern logs.
        engine = create_async_engine(url, hide_parameters=True, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        db = cls(engine)
        if migrate:
            from lantern.store.migrate import upgrade

            try:
                await upgrade(engine)
            except Exception as exc:
                await engine.dispose()
                raise StoreError(f"cannot open or migrate the database at {url}: {exc}") from exc
        return db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success, rolled back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


def _create_private(path: Path) -> None:
    """Create an empty SQLite file with mode 0600 unless it exists: SQLite gives its -wal and
    -shm files the database file's permissions, so none of them is readable by others."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
