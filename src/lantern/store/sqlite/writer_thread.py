"""The one thread that writes a SQLite file for this process, and reads on its way.

Through SQLAlchemy's asyncio adapter every statement costs several thread hops and ~0.6 ms of
CPU, and several pooled connections writing one SQLite file wait on its lock in SQLite's
sleeping busy handler (a lock convoy). So every transactional unit of work of this process on a
SQLite file runs here: one dedicated thread with one synchronous connection, one thread hop per
call, a few tens of microseconds per statement. Group commit
(:class:`~lantern.store.group_commit.GroupCommit`) makes one call of many requests.

:meth:`WriterThread.write` runs ``fn(connection)`` in a ``BEGIN IMMEDIATE`` transaction and
returns after the COMMIT (or raises with everything rolled back); :meth:`WriterThread.read` runs
it in a deferred (snapshot) transaction that is rolled back. Calls run in submission order. The
thread closes its connection and exits after :data:`IDLE_SECONDS` without work and is started
again on demand; :meth:`close` ends it at once (a later call starts it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection

from lantern.store.sqlite.checkpoint import WalCheckpointer
from lantern.store.sqlite.connection import READING, raw_connection, sync_engine

__all__ = ["IDLE_SECONDS", "WriterThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")
IDLE_SECONDS = 2.0


@dataclass(eq=False, slots=True)
class _Call:
    fn: Callable[[Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_STOP = object()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; the work is done (or undone) regardless
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _end_transaction(conn: Connection) -> None:
    """Roll back what a failed call left open: a COMMIT refused by SQLite (a deferred foreign
    key, SQLITE_BUSY) leaves its transaction open, and the next BEGIN would fail."""
    raw = raw_connection(conn)
    if raw is not None and raw.in_transaction:
        raw.rollback()


class WriterThread:
    """Runs transactional work on a SQLite file in a thread of its own (module docstring)."""

    def __init__(self, path: str, *, checkpoints: bool = False) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[_Call | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # With checkpoints, WAL checkpoints run beside the writer instead of inside its commits.
        self._checkpointer = WalCheckpointer(path) if checkpoints else None

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn``'s result once its transaction committed; its exception (rolled back) else."""
        return await self._submit(fn, write=True)  # type: ignore[no-any-return]

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn``'s result, run on one consistent snapshot of committed data."""
        return await self._submit(fn, write=False)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Finish queued calls, then close the connection and end the thread."""
        with self._lock:
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    async def _submit(self, fn: Callable[[Connection], Any], *, write: bool) -> Any:
        loop = asyncio.get_running_loop()
        call = _Call(fn, write, loop, loop.create_future())
        with self._lock:
            self._queue.put(call)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._main, name="lantern-sqlite-writer", daemon=True
                )
                self._thread.start()
        return await call.future

    def _main(self) -> None:
        engine = sync_engine(self.path)
        if self._checkpointer is not None:
            self._checkpointer.start()
        try:
            with engine.connect() as conn:
                while True:
                    try:
                        item = self._queue.get(timeout=IDLE_SECONDS)
                    except queue.Empty:
                        with self._lock:
                            if self._queue.empty():
                                self._thread = None
                                return
                        continue
                    if item is _STOP:
                        with self._lock:
                            if self._queue.empty():
                                self._thread = None
                                return
                        continue  # calls came after close(): serve them
                    assert isinstance(item, _Call)
                    self._run(conn, item)
        except BaseException:
            log.exception("the SQLite writer thread failed")
            with self._lock:
                self._thread = None
                leftover = []
                while not self._queue.empty():
                    leftover.append(self._queue.get_nowait())
            for item in leftover:
                if isinstance(item, _Call):
                    self._answer(item, False, RuntimeError("the SQLite writer thread stopped"))
            raise
        finally:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            engine.dispose()

    def _run(self, conn: Connection, call: _Call) -> None:
        conn.info[READING] = not call.write
        try:
            with conn.begin() as transaction:
                result = call.fn(conn)
                if not call.write:
                    transaction.rollback()  # nothing to keep; ends the snapshot
        except Exception as exc:
            _end_transaction(conn)
            self._answer(call, False, exc)
        else:
            self._answer(call, True, result)
        finally:
            conn.info[READING] = False

    @staticmethod
    def _answer(call: _Call, ok: bool, value: Any) -> None:
        # RuntimeError: the caller's event loop is closed; nobody is waiting.
        with contextlib.suppress(RuntimeError):
            call.loop.call_soon_threadsafe(_settle, call.future, ok, value)
