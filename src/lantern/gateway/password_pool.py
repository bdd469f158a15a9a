"""Password checks (scrypt, ~30-50 ms of CPU each) on a bounded pool of dedicated threads.

``asyncio.to_thread`` would run them on the loop's default executor (up to 32 threads), so a
flood of CONNECTs with wrong passwords could take every core. Here at most ``threads`` checks
run at once (1 by default: a flood costs at most one core), and at most ``max_pending`` are
accepted (running or waiting); beyond that :meth:`PasswordChecker.verify` answers None at once
("server busy") instead of queueing. When the caller is cancelled (its connection went away), a
waiting check is dropped, but a running one keeps its place until its thread finishes it, so
abandoned CONNECTs cannot put more than ``max_pending`` checks on the threads.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from lantern.gateway.passwords import verify_password

__all__ = ["PasswordChecker"]


class PasswordChecker:
    """Runs :func:`verify_password` on ``threads`` threads, at most ``max_pending`` at once."""

    def __init__(self, *, threads: int = 1, max_pending: int = 16) -> None:
        if threads < 1 or max_pending < 1:
            raise ValueError("threads and max_pending must be >= 1")
        self.threads = threads
        self.max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_pending)
        self._executor: ThreadPoolExecutor | None = None  # created on first use

    async def verify(self, password: str, stored: str) -> bool | None:
        """True/False as :func:`verify_password`; None when ``max_pending`` checks are
        already accepted (the caller refuses with "server busy")."""
        if not self._slots.acquire(blocking=False):
            return None
        try:
            executor = self._executor
            if executor is None:
                executor = self._executor = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="lantern-password"
                )
            future: Future[bool] = executor.submit(verify_password, password, stored)
        except BaseException:
            self._slots.release()
            raise
        # Released when the check ends or is dropped before it started, not when this
        # coroutine is cancelled (cancelling cannot stop a check that is running).
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the threads (checks still queued are dropped)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
