"""Duties that run on exactly one node of the cluster at a time (the jobs timer, the FHIR outbox
forwarder), each under its own lock.

* :class:`AdvisoryLock` (PostgreSQL): a session-level ``pg_try_advisory_lock`` held on a
  dedicated connection. When the holder dies its connection closes and PostgreSQL frees the
  lock at once; another node, retrying every ``retry_seconds``, takes the duty over.
* :class:`FileLock` (the workers of one machine on SQLite): ``flock`` on a file in the data
  directory, freed by the kernel when the holding process ends.

:class:`Singleton` runs a duty while its lock is held, checks every ``retry_seconds`` that it
still is (a lost database connection means the lock is lost: the duty stops here before
anyone else can take it), and retries to take it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lantern.store.locks import advisory_key

__all__ = ["AdvisoryLock", "DutyLock", "FileLock", "Singleton"]

log = logging.getLogger("lantern.cluster")

Duty = Callable[[asyncio.Event], Coroutine[object, object, None]]


class DutyLock(Protocol):
    async def try_acquire(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection of its own (autocommit: never
    idle in a transaction while held)."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self._engine = engine
        self._key = advisory_key(f"singleton:{name}")
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
            ).scalar_one()
        except BaseException:
            await _discard(conn)
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), timeout=5.0)
        except Exception:
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await asyncio.wait_for(
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key}), 5.0
            )
            await conn.close()
        except Exception:
            await _discard(conn)  # closing the session frees the lock as well


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


class FileLock:
    """An exclusive ``flock`` on ``path`` (processes of one machine)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock


class Singleton:
    """Runs ``duty(stop)`` on this node while ``lock`` is held (see the module docstring)."""

    def __init__(
        self, name: str, lock: DutyLock, duty: Duty, *, retry_seconds: float = 2.0
    ) -> None:
        self.name = name
        self.lock = lock
        self.duty = duty
        self.retry_seconds = retry_seconds
        self.held = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=f"singleton-{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=self.retry_seconds)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = await self.lock.try_acquire()
            except Exception as exc:
                log.warning("%s: cannot try its lock (%s); retrying", self.name, type(exc).__name__)
                got = False
            if got:
                await self._hold()
            else:
                await self._pause()

    async def _hold(self) -> None:
        log.info("%s: this node runs it now", self.name)
        self.held = True
        stop_duty = asyncio.Event()
        task = asyncio.create_task(self.duty(stop_duty), name=f"duty-{self.name}")
        try:
            while not self._stop.is_set():
                await self._pause()
                if task.done():
                    log.error("%s: the duty ended unexpectedly; handing it over", self.name)
                    break
                if not await self.lock.still_held():
                    log.error(
                        "%s: lost its lock (database connection lost); stopped here, another "
                        "node takes over",
                        self.name,
                    )
                    break
        finally:
            self.held = False
            stop_duty.set()
            try:
                await asyncio.wait_for(task, timeout=10.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("%s: the duty failed", self.name)
            await self.lock.release()
            if not self._stop.is_set():
                log.info("%s: released; will try to take it again", self.name)
