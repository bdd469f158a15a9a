"""Pre-issued key pairs for CreateKeysAndCertificate, made in background threads.

An RSA-2048 key takes ~50 ms of CPU to generate. A request must not wait for that when it can be
done ahead: :class:`KeyPool` keeps up to ``size`` fresh key pairs with their certificates
(signed by the platform CA, not yet in the registry) in memory, and ``workers`` threads replace
every one taken. A burst larger than the pool is served as fast as the threads generate (the
CPU is the ceiling). OpenSSL releases the GIL while it generates, so the event loop keeps
running. The pool starts filling on the first request (an idle server spends nothing). Pooled
keys are never written to disk or logged, and each is handed out exactly once.

The threads belong to a :class:`~concurrent.futures.ThreadPoolExecutor`: at interpreter exit it
lets the (at most ``workers``) generations in progress finish instead of killing a thread inside
OpenSSL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lantern.pki import IssuedCertificate

__all__ = ["KeyPool"]

log = logging.getLogger(__name__)

# Pooled certificates older than this are dropped (their validity starts when they were made).
MAX_AGE_SECONDS = 600.0


class KeyPool:
    """Up to ``size`` ready key pairs, refilled by ``workers`` threads calling ``make``.

    Use from one event loop (the first :meth:`take` binds it; a later loop starts over).
    """

    def __init__(
        self, make: Callable[[], IssuedCertificate], *, size: int = 32, workers: int = 2
    ) -> None:
        self._make = make
        self.size = size
        self.workers = max(1, workers)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="lantern-keypool")
        self._ready: deque[tuple[float, IssuedCertificate]] = deque()
        self._waiters: deque[asyncio.Future[IssuedCertificate]] = deque()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def take(self) -> IssuedCertificate:
        """A fresh key pair and its certificate, handed to nobody else."""
        if self._closed:
            raise RuntimeError("the key pool is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or another event loop: start over
            self._ready.clear()
            self._waiters.clear()
            self._in_flight = 0
            self._loop = loop
        while self._ready:
            made, issued = self._ready.popleft()
            if time.monotonic() - made < MAX_AGE_SECONDS:
                self._refill()
                return issued
        future: asyncio.Future[IssuedCertificate] = loop.create_future()
        self._waiters.append(future)
        self._refill()
        return await future

    def close(self) -> None:
        """Forget the pooled keys and stop generating (a generation in progress finishes)."""
        self._closed = True
        self._ready.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _refill(self) -> None:
        loop = self._loop
        assert loop is not None
        while (
            not self._closed
            and self._in_flight < self.workers
            and len(self._ready) + self._in_flight < self.size + len(self._waiters)
        ):
            self._in_flight += 1
            loop.run_in_executor(self._executor, self._make).add_done_callback(self._made)

    def _made(self, future: asyncio.Future[IssuedCertificate]) -> None:
        if asyncio.get_running_loop() is not self._loop:  # from a previous loop: stale
            return
        self._in_flight -= 1
        if future.cancelled() or self._closed:
            return
        error = future.exception()
        if error is not None:
            log.error("key generation failed: %s", error)
            # Fail the waiting requests rather than leave them waiting; the next take retries.
            while (waiter := self._next_waiter()) is not None:
                waiter.set_exception(error)
            return
        issued = future.result()
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(issued)
        else:
            self._ready.append((time.monotonic(), issued))
        self._refill()

    def _next_waiter(self) -> asyncio.Future[IssuedCertificate] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None
