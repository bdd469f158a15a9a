"""Opening SQLite: the pragmas every connection gets, the file check, raw and SQLAlchemy access.

Every connection Lantern opens to a SQLite file goes through :func:`apply_pragmas`: WAL (readers
never block the writer), ``synchronous=FULL`` (a commit survives power loss too, which is what
"acknowledge after durable" promises; writers group commits for throughput), foreign keys
enforced, and a ``busy_timeout`` so connections of other threads and processes take turns on
the write lock instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

__all__ = [
    "BUSY_TIMEOUT_MS",
    "PRAGMAS",
    "apply_pragmas",
    "connect_raw",
    "create_private",
    "raw_connection",
    "sqlite_path",
    "sync_engine",
]

BUSY_TIMEOUT_MS = 10_000
PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=FULL",
    "foreign_keys=ON",
    f"busy_timeout={BUSY_TIMEOUT_MS}",
)
#: Connection info key: a connection of :func:`sync_engine` marked so reads BEGIN DEFERRED.
READING = "lantern.sqlite.reading"


def apply_pragmas(dbapi_connection: Any, *, driver_transactions: bool = True) -> None:
    """Set :data:`PRAGMAS` on a new DB-API connection (``sqlite3`` or aiosqlite's adapter).

    ``driver_transactions=False`` turns the ``sqlite3`` module's implicit BEGIN off, so the
    caller (SQLAlchemy's ``begin`` event, or explicit SQL) emits BEGIN itself (SAVEPOINTs then
    work as documented)."""
    if not driver_transactions:
        dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def sqlite_path(url: URL) -> str | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return str(database)


def create_private(path: Path) -> None:
    """Create an empty database file with mode 0600 unless it exists (SQLite gives its -wal and
    -shm files the database file's permissions), in a 0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect_raw(path: str, *, autocheckpoint_pages: int | None = None) -> sqlite3.Connection:
    """A ``sqlite3`` connection with the pragmas, in autocommit mode (the caller says BEGIN).

    ``autocheckpoint_pages`` sets ``wal_autocheckpoint`` (a writer whose checkpoints run beside
    it, in :class:`~lantern.store.sqlite.checkpoint.WalCheckpointer`, raises it)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    apply_pragmas(conn, driver_transactions=False)
    if autocheckpoint_pages is not None:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
    return conn


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    apply_pragmas(dbapi_connection, driver_transactions=False)


def _on_begin(conn: Connection) -> None:
    # Writes take the write lock up front (a batch never fails half-way on a lock upgrade);
    # reads get a plain (deferred) transaction: one consistent snapshot, no lock.
    conn.exec_driver_sql("BEGIN" if conn.info.get(READING) else "BEGIN IMMEDIATE")


def sync_engine(path: str) -> Engine:
    """A synchronous SQLAlchemy engine on the file (``sqlite3`` driver): pragmas on connect,
    ``BEGIN IMMEDIATE`` for every transaction unless the connection is marked :data:`READING`."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, hide_parameters=True)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def raw_connection(conn: Connection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under a synchronous SQLAlchemy connection, or None (another
    driver): statements run on it join the SQLAlchemy connection's transaction."""
    if conn.dialect.driver != "pysqlite":
        return None
    raw = conn.connection.driver_connection
    return raw if isinstance(raw, sqlite3.Connection) else None
