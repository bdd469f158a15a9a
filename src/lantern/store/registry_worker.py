"""Registry work off the event loop, with group commit (the hot path of provisioning and CONNECT).

A *job* is a synchronous function of a SQLAlchemy :class:`~sqlalchemy.engine.Connection` (the
synchronous repository helpers of :mod:`lantern.store.registry` are written for it).
:meth:`RegistryWorker.write` runs jobs in shared transactions: every job that is queued while
one transaction commits goes into the next one (group commit: one fsync for many requests), each
inside its own SAVEPOINT, so a job that raises is rolled back alone and the caller gets its
exception, exactly as if it had had its own transaction. The transaction commits before any
caller is answered. :meth:`RegistryWorker.read` runs a read-only job outside any transaction.

Why: through SQLAlchemy's asyncio adapter each statement costs several thread hops and ~0.6 ms of
CPU, and many pooled connections writing one SQLite file wait on its lock in SQLite's sleeping
busy handler. On a SQLite file, jobs run on one dedicated thread with its own synchronous
connection (one thread hop per job, ~0.1 ms per statement, no lock convoy; the thread exits when
idle and is restarted on demand). On other databases (PostgreSQL) the same jobs run through the
async engine with ``run_sync``, still grouped.

One worker per :class:`Database`: :meth:`RegistryWorker.for_database`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from lantern.store.db import Database

__all__ = ["Job", "RegistryWorker"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Connection], T]

# Jobs per transaction at most (bounds the time a batch holds the SQLite write lock).
MAX_BATCH = 256
_READING = "lantern.registry_worker.reading"
# The SQLite thread closes its connection and exits after this long without work.
IDLE_SECONDS = 2.0


@dataclass(eq=False)
class _Item:
    fn: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    write: bool
    outcome: tuple[bool, Any] = field(default=(False, None))


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; the work is done (or undone) regardless
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _run_batch(conn: Connection, items: list[_Item]) -> None:
    """Run write jobs in the caller's transaction, each in a SAVEPOINT; record outcomes."""
    for item in items:
        savepoint = conn.begin_nested()
        try:
            result = item.fn(conn)
        except Exception as exc:
            savepoint.rollback()
            item.outcome = (False, exc)
        else:
            savepoint.commit()
            item.outcome = (True, result)


def _sqlite_file_url(db: Database) -> sa.URL | None:
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.set(drivername="sqlite")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The same durability as lantern.store.db (WAL, synchronous=FULL). isolation_level=None:
    # SQLAlchemy, not the driver, emits BEGIN (below), so SAVEPOINTs work as documented.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writes take the write lock up front (a batch never fails half-way on a lock upgrade);
    # reads get a plain (deferred) transaction: one consistent snapshot, no lock.
    conn.exec_driver_sql("BEGIN" if conn.info.get(_READING) else "BEGIN IMMEDIATE")


class RegistryWorker:
    """Runs registry jobs for one database (see the module docstring)."""

    _instances: weakref.WeakKeyDictionary[Database, RegistryWorker] = weakref.WeakKeyDictionary()

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sqlite_url = _sqlite_file_url(db)
        # SQLite thread state
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # async (other databases) state, per event loop
        self._pending: list[_Item] = []
        self._drainer: asyncio.Task[None] | None = None

    @classmethod
    def for_database(cls, db: Database) -> RegistryWorker:
        """The worker shared by everything using ``db`` in this process."""
        worker = cls._instances.get(db)
        if worker is None:
            worker = cls._instances[db] = cls(db)
        return worker

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a (shared) transaction; returns after the commit. If ``fn`` raises,
        its changes are rolled back and the exception is raised here."""
        return await self._submit(fn, write=True)  # type: ignore[no-any-return]

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run a read-only ``fn`` (no transaction of its own; sees committed data)."""
        return await self._submit(fn, write=False)  # type: ignore[no-any-return]

    async def _submit(self, fn: Callable[[Connection], Any], *, write: bool) -> Any:
        loop = asyncio.get_running_loop()
        item = _Item(fn, loop, loop.create_future(), write)
        if self._sqlite_url is not None:
            with self._lock:
                self._queue.put(item)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._thread_main, name="lantern-registry", daemon=True
                    )
                    self._thread.start()
        elif not write:
            async with self.db.connect() as conn:
                return await conn.run_sync(fn)
        else:
            self._pending.append(item)
            if self._drainer is None or self._drainer.done():
                self._drainer = loop.create_task(self._drain())
        return await item.future

    # -- other databases: grouped on the event loop -----------------------------------------------
    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self.db.transaction() as conn:
                    await conn.run_sync(_run_batch, batch)
            except Exception as exc:  # the commit failed: nothing of the batch was kept
                for item in batch:
                    _settle(item.future, False, exc)
            else:
                for item in batch:
                    _settle(item.future, *item.outcome)

    # -- SQLite file: one thread, one connection ---------------------------------------------------
    def _thread_main(self) -> None:
        assert self._sqlite_url is not None
        engine = sa.create_engine(self._sqlite_url, poolclass=NullPool, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        try:
            with engine.connect() as conn:
                while True:
                    try:
                        first = self._queue.get(timeout=IDLE_SECONDS)
                    except queue.Empty:
                        with self._lock:
                            if self._queue.empty():
                                self._thread = None
                                return
                        continue
                    batch = [first]
                    while len(batch) < MAX_BATCH:
                        try:
                            batch.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
                    self._execute(conn, batch)
        except BaseException:
            log.exception("the registry worker thread failed")
            with self._lock:
                self._thread = None
                leftover = []
                while not self._queue.empty():
                    leftover.append(self._queue.get_nowait())
            for item in leftover:
                self._answer(item, False, RuntimeError("the registry worker stopped"))
            raise
        finally:
            engine.dispose()

    def _execute(self, conn: Connection, batch: list[_Item]) -> None:
        writes = [item for item in batch if item.write]
        for item in batch:
            if not item.write:
                conn.info[_READING] = True
                try:
                    self._answer(item, True, item.fn(conn))
                except Exception as exc:
                    self._answer(item, False, exc)
                finally:
                    if conn.in_transaction():  # reads autobegin; end it (nothing to keep)
                        conn.rollback()
                    conn.info[_READING] = False
        if not writes:
            return
        try:
            with conn.begin():
                _run_batch(conn, writes)
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of the batch was kept
            for item in writes:
                self._answer(item, False, exc)
            return
        for item in writes:
            self._answer(item, *item.outcome)

    @staticmethod
    def _answer(item: _Item, ok: bool, value: Any) -> None:
        # RuntimeError: the caller's event loop is closed; nobody is waiting.
        with contextlib.suppress(RuntimeError):
            item.loop.call_soon_threadsafe(_settle, item.future, ok, value)
