"""One transaction per call of a synchronous batch function, for group-commit writers.

A group-commit writer applies many requests in one transaction, each with a few small
statements. Through the async engine every statement is a hop to the driver's thread and back
through the event loop; here the whole batch is one call instead:

* SQLite file: a dedicated thread with its own synchronous engine on the same file (WAL,
  ``synchronous=FULL``, foreign keys and ``busy_timeout``, as :mod:`lantern.store.db` sets), every
  transaction opened with ``BEGIN IMMEDIATE`` so the batch reads and writes under the write lock
  (other connections and processes take turns through ``busy_timeout``).
* anything else (PostgreSQL, in-memory SQLite): ``AsyncConnection.run_sync`` inside
  :meth:`Database.transaction`.

:meth:`BatchTransactions.run` returns only after the COMMIT succeeded (durable), or raises with
nothing of the batch stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event

from lantern.store.db import Database

__all__ = ["BatchTransactions", "sqlite_file"]

T = TypeVar("T")


def sqlite_file(db: Database) -> str | None:
    """The file behind ``db`` when it is a SQLite file database, else None."""
    url = db.engine.url
    if not db.is_sqlite or not url.database or url.database == ":memory:":
        return None
    return str(url.database)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling off: SQLAlchemy's "begin" event emits BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_engine(path: str) -> Engine:
    engine = create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0, hide_parameters=True)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


class BatchTransactions:
    """Runs ``fn(connection)`` in a transaction of its own; one call at a time on SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._path = sqlite_file(db)
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Engine | None = None

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn``'s result once its transaction has committed; its error (rolled back) else."""
        if self._path is None:
            async with self._db.transaction() as conn:
                return await conn.run_sync(fn)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-batch")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._in_sqlite, fn)

    def _in_sqlite(self, fn: Callable[[Connection], T]) -> T:
        if self._engine is None:
            assert self._path is not None
            self._engine = _sqlite_engine(self._path)
        with self._engine.begin() as conn:
            return fn(conn)

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def close(self) -> None:
        """Close the thread and its connection (a later :meth:`run` opens them again)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._dispose)
            executor.shutdown(wait=True)
