"""Private keys generated ahead, in background threads, for CreateKeysAndCertificate.

An RSA-2048 key takes ~35 ms of CPU to generate (measured here), which caps a 2-core server
near 60 keys/s. A request must not wait for that when it can be done ahead: :class:`KeyPool`
keeps up to ``size`` fresh keys in memory, and ``workers`` threads replace every one taken.
OpenSSL releases the GIL while it generates, so the event loop keeps running. A burst larger
than the pool is served as fast as the threads generate (the CPU is the ceiling).

Keys are made ahead by ONE thread at the lowest CPU priority (``nice`` 19, Linux): refilling
the pool takes idle CPU only, never CPU a burst of requests needs (measured: refilling at normal
priority during a 1,000-device burst cost ~7 ms of CPU per flow). Only while requests wait
for keys (the pool is empty) do ``workers`` threads at normal priority make them.

Only keys are pooled, not certificates: the certificate is signed when a key is taken, so its
validity starts at issue time however long the key waited. Pooled keys are never written to
disk or logged, and each is handed out exactly once; :meth:`KeyPool.close` forgets them.

The threads belong to a :class:`~concurrent.futures.ThreadPoolExecutor`: at interpreter exit it
lets the (at most ``workers``) generations in progress finish instead of killing a thread inside
OpenSSL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["KeyPool"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _lowest_priority() -> None:
    """Thread initializer: run this thread at nice 19 (Linux schedules threads separately)."""
    # Not Linux, or not permitted: normal priority then.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class KeyPool(Generic[T]):
    """Up to ``size`` ready items (keys), refilled by ``workers`` threads calling ``make``.

    Use from one event loop (the first :meth:`fill` or :meth:`take` binds it; a later loop
    starts over). ``size`` 0 keeps nothing ahead: each :meth:`take` waits for its own ``make``.
    """

    def __init__(self, make: Callable[[], T], *, size: int = 32, workers: int = 2) -> None:
        self._make = make
        self.size = max(0, size)
        self.workers = max(1, workers)
        # For waiting requests: normal priority. Ahead of demand: one thread at nice 19.
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="lantern-keypool")
        self._ahead = ThreadPoolExecutor(
            1, thread_name_prefix="lantern-keypool-idle", initializer=_lowest_priority
        )
        self._ready: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()
        self._in_flight = 0  # on either executor
        self._urgent = 0  # on the normal-priority executor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def ready(self) -> int:
        """Items made and not yet taken."""
        return len(self._ready)

    def fill(self) -> None:
        """Start making items now (e.g. at startup), so that a first burst finds them ready."""
        self._bind(asyncio.get_running_loop())
        self._refill()

    async def take(self) -> T:
        """A fresh item, handed to nobody else."""
        self._bind(asyncio.get_running_loop())
        if self._ready:
            item = self._ready.popleft()
            self._refill()
            return item
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        self._waiters.append(future)
        self._refill()
        return await future

    def close(self) -> None:
        """Forget the pooled items and stop making them (a generation in progress finishes)."""
        self._closed = True
        self._ready.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._ahead.shutdown(wait=False, cancel_futures=True)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed:
            raise RuntimeError("the key pool is closed")
        if self._loop is not loop:  # first use, or another event loop: start over
            self._ready.clear()
            self._waiters.clear()
            self._in_flight = self._urgent = 0
            self._loop = loop

    def _refill(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._closed and len(self._ready) + self._in_flight < self.size + len(
            self._waiters
        ):
            if self._waiters and self._urgent < self.workers:
                self._urgent += 1
                executor, urgent = self._executor, True
            elif self._in_flight - self._urgent < 1:
                executor, urgent = self._ahead, False
            else:
                return
            self._in_flight += 1
            loop.run_in_executor(executor, self._make).add_done_callback(
                functools.partial(self._made, urgent=urgent)
            )

    def _made(self, future: asyncio.Future[T], *, urgent: bool) -> None:
        if asyncio.get_running_loop() is not self._loop:  # from a previous loop: stale
            return
        self._in_flight -= 1
        self._urgent -= urgent
        if future.cancelled() or self._closed:
            return
        error = future.exception()
        if error is not None:
            log.error("key generation failed: %s", error)
            # Fail the waiting requests rather than leave them waiting; the next take retries.
            while (waiter := self._next_waiter()) is not None:
                waiter.set_exception(error)
            return
        item = future.result()
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(item)
        else:
            self._ready.append(item)
        self._refill()

    def _next_waiter(self) -> asyncio.Future[T] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None
