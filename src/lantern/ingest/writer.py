"""Group commit: many observations per transaction, each caller resumed only after its commit.

While one transaction commits, new submissions queue up; the next transaction takes all of them
(up to ``batch_max``). Under load a batch grows to match the commit latency, so throughput does not
depend on one fsync per message, and at low load an observation waits for no timer. A SQLite
writer (process or thread, which commit in the order given) is handed the next batch while one
commits, so it starts right after that COMMIT instead of after the answer's round trip. If a commit
fails, every waiter of that batch gets :class:`CommitFailed` and nothing of the batch is stored
(one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Literal

from lantern.ingest.errors import CommitFailed
from lantern.store import Database
from lantern.store.ingest import ObservationRow, SqliteObservationWriter, insert_observations
from lantern.store.ingest_process import ProcessObservationWriter

log = logging.getLogger(__name__)

_Item = tuple[ObservationRow, "asyncio.Future[None]"]
_PIPELINE = 2  # batches handed to a SQLite writer at once (measured: +11 % obs/s, same latency)


class GroupCommitWriter:
    """Batches :meth:`submit` calls into transactions. ``start`` before use, ``stop`` to drain."""

    def __init__(
        self,
        db: Database,
        *,
        batch_max: int = 512,
        outbox: bool = False,
        sqlite_writer: Literal["process", "thread"] = "process",
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._batch_max = batch_max
        self._outbox = outbox
        self._sqlite_writer = sqlite_writer
        self._clock = clock
        self._on_commit = on_commit  # e.g. wake the FHIR forwarder
        self._pending: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sqlite: SqliteObservationWriter | ProcessObservationWriter | None = None
        self._stopping = False
        self.batches = 0  # number of committed transactions (for tests and metrics)
        self.committed = 0

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            path = SqliteObservationWriter.path_of(self._db)
            if path is not None and self._sqlite is None:
                if self._sqlite_writer == "process":
                    self._sqlite = ProcessObservationWriter(path)
                else:
                    self._sqlite = SqliteObservationWriter(path)
                await self._sqlite.start()
            self._task = asyncio.create_task(self._run(), name="ingest-group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then stop; later submissions fail."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None

    async def submit(self, row: ObservationRow) -> None:
        """Return once ``row`` is committed; raise :class:`CommitFailed` if its batch failed."""
        if self._stopping or self._task is None:
            raise CommitFailed("the observation writer is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, fut))
        self._wakeup.set()
        await fut

    async def _run(self) -> None:
        # With a SQLite writer, the next batch is handed over while one commits (at most
        # _PIPELINE in flight; the writer commits them in order): it starts the moment the
        # previous COMMIT returns instead of after its answer came back to this loop.
        depth = _PIPELINE if self._sqlite is not None else 1
        in_flight: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            self._wakeup.set()

        while True:
            if not self._pending or len(in_flight) >= depth:
                if self._stopping and not self._pending and not in_flight:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._pending[: self._batch_max]
            del self._pending[: self._batch_max]
            task = asyncio.create_task(self._commit(batch))
            in_flight.add(task)
            task.add_done_callback(done)

    async def _commit(self, batch: list[_Item]) -> None:
        # Waiters whose task was cancelled (connection gone) are still committed: the device may
        # not have seen a PUBACK, and a duplicate is better than a loss for QoS 1.
        rows = [row for row, _ in batch]
        try:
            if self._sqlite is not None:
                await self._sqlite.write(rows, outbox=self._outbox, now=self._clock())
            else:
                async with self._db.transaction() as conn:
                    await insert_observations(conn, rows, outbox=self._outbox, now=self._clock())
        except Exception as exc:
            log.error("group commit of %d observations failed: %s", len(rows), type(exc).__name__)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(CommitFailed(f"the batch could not be stored: {exc}"))
            return
        self.batches += 1
        self.committed += len(rows)
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)
        if self._on_commit is not None:
            self._on_commit()
