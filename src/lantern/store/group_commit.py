"""Group commit: many callers' requests in one transaction, each caller answered after the commit.

Every batched writer of Lantern (observations, job execution updates, the registry's writes,
the push delivery log, the scheduler's results, …) is a :class:`GroupCommit` with its own
``commit`` function. The contract, the same for all:

* :meth:`GroupCommit.submit` queues one request and returns that request's outcome only once
  the transaction holding it has committed (durable). While one batch commits, new requests
  queue up; the next batch takes all of them, up to ``batch_max``. Under load a batch grows to
  match the commit latency (one fsync for many requests); a lone request waits for no timer.
* The queue is bounded (``queue_max`` requests waiting): a caller that finds it full waits for
  room (backpressure; the MQTT server then stops reading that client) instead of growing memory.
* ``commit(batch)`` runs the batch in ONE transaction and returns one outcome per request, in
  order: a value, or an exception for that request alone (it was rolled back on its own, e.g. in
  a savepoint, or refused before writing). ``submit`` returns the value or raises that exception.
* If ``commit`` itself raises (the transaction failed: nothing of the batch is stored), every
  request of the batch fails with :class:`CommitFailed`, the cause chained. Nothing is ever
  reported stored that is not. What to tell clients (PUBACK 0x80, a rejected reply, HTTP 503,
  or "sent, but not logged") is the caller's decision.
* ``pipeline`` > 1 hands the next batch to ``commit`` while earlier ones are still committing,
  for writers that commit in the order given (a single writer thread or process): the next
  batch starts right after the previous COMMIT instead of after its answer's round trip.
* A caller cancelled while waiting does not withdraw its request: it is committed anyway (a
  device that saw no PUBACK resends; a duplicate is better than a loss).
* :meth:`stop` commits what is queued; requests submitted after it fail with
  :class:`CommitFailed`. The writer starts on the first :meth:`submit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from lantern.store import commit_stats
from lantern.store.commit_stats import CommitStats
from lantern.store.db import StoreError

__all__ = ["CommitFailed", "GroupCommit"]

log = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")


class CommitFailed(StoreError):
    """The transaction holding a request could not commit: nothing of its batch is stored."""


class GroupCommit(Generic[R, T]):
    """Batches :meth:`submit` calls into transactions run by ``commit`` (module docstring)."""

    def __init__(
        self,
        commit: Callable[[list[R]], Awaitable[Sequence[T | BaseException]]],
        *,
        name: str,
        batch_max: int = 512,
        queue_max: int = 10_000,
        pipeline: int = 1,
    ) -> None:
        if batch_max < 1 or queue_max < batch_max or pipeline < 1:
            raise ValueError("need batch_max >= 1, queue_max >= batch_max and pipeline >= 1")
        self.name = name
        self._commit = commit
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._pipeline = pipeline
        self._pending: deque[tuple[R, asyncio.Future[T]]] = deque()
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0  # committed transactions (for tests and metrics)
        self.committed = 0  # requests in committed transactions
        self.failed_batches = 0
        #: Batch sizes and commit durations (exported as ``lantern_store_*`` metrics).
        self.stats = CommitStats()
        commit_stats.register(self)

    @property
    def queued(self) -> int:
        """Requests waiting for a transaction."""
        return len(self._pending)

    async def submit(self, request: R) -> T:
        """``request``'s outcome once its transaction committed (see the module docstring)."""
        while len(self._pending) >= self._queue_max and not self._stopping:
            self._room.clear()
            await self._room.wait()
        if self._stopping:
            raise CommitFailed(f"{self.name}: the writer is stopping")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.name}")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wakeup.set()
        return await future

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._stopping = True
        self._wakeup.set()
        self._room.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            self._wakeup.set()

        while True:
            if not self._pending or len(in_flight) >= self._pipeline:
                if self._stopping and not self._pending and not in_flight:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            take = min(self._batch_max, len(self._pending))
            batch = [self._pending.popleft() for _ in range(take)]
            self._room.set()
            task = asyncio.create_task(self._commit_batch(batch))
            in_flight.add(task)
            task.add_done_callback(done)

    async def _commit_batch(self, batch: list[tuple[R, asyncio.Future[T]]]) -> None:
        stats = self.stats
        stats.batch_sizes.observe(len(batch))
        started = time.monotonic()
        try:
            outcomes = await self._commit([request for request, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"commit returned {len(outcomes)} outcomes for {len(batch)}")
        except Exception as exc:
            stats.commit_seconds.observe(time.monotonic() - started)
            stats.failed_batches += 1
            self.failed_batches += 1
            log.error(
                "%s: a batch of %d could not be committed (%s)",
                self.name,
                len(batch),
                type(exc).__name__,
            )
            for _, future in batch:
                if not future.done():
                    failure = CommitFailed(f"{self.name}: the batch could not be stored: {exc}")
                    failure.__cause__ = exc
                    future.set_exception(failure)
            return
        stats.commit_seconds.observe(time.monotonic() - started)
        self.batches += 1
        self.committed += len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
