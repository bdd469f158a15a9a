"""The observation write path: one :class:`~lantern.store.group_commit.GroupCommit` over the
store's :class:`~lantern.store.ingest.ObservationSink`.

Each FHIRIngest publish submits its row and resumes only after the transaction holding it
committed, so the PUBACK that follows means "durable". While one batch commits the next queues
up (a batch grows with the commit latency; a lone observation waits for no timer). If a batch
cannot commit, every caller in it gets :class:`CommitFailed` and nothing of it is stored. Which
sink (SQLite writer process or thread, PostgreSQL engine) is the store's choice
(:func:`lantern.store.ingest.open_observation_sink`), made by the runtime.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lantern.ingest.errors import CommitFailed
from lantern.store.group_commit import GroupCommit
from lantern.store.ingest.ports import ObservationSink
from lantern.store.ingest.records import ObservationRow

__all__ = ["GroupCommitWriter"]

QUEUE_MAX = 20_000  # observations waiting for a transaction before publishers wait (backpressure)


class GroupCommitWriter:
    """Batches :meth:`submit` calls into transactions of ``sink``. ``start`` before use (starts
    the sink, e.g. its writer process), ``stop`` to commit what is queued and close the sink."""

    def __init__(
        self,
        sink: ObservationSink,
        *,
        batch_max: int = 512,
        outbox: bool = False,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sink = sink
        self._batch_max = batch_max
        self._outbox = outbox
        self._clock = clock
        self._on_commit = on_commit  # e.g. wake the FHIR forwarder
        self._commit: GroupCommit[ObservationRow, None] | None = None

    @property
    def batches(self) -> int:
        """Committed transactions (for tests and metrics)."""
        return 0 if self._commit is None else self._commit.batches

    @property
    def committed(self) -> int:
        """Observations in committed transactions."""
        return 0 if self._commit is None else self._commit.committed

    async def start(self) -> None:
        if self._commit is None:
            await self._sink.start()
            self._commit = GroupCommit(
                self._write,
                name="observations",
                batch_max=self._batch_max,
                queue_max=max(QUEUE_MAX, self._batch_max),
                pipeline=self._sink.pipeline,
            )

    async def stop(self) -> None:
        """Commit what is queued, then close the sink; later submissions fail."""
        commit, self._commit = self._commit, None
        if commit is not None:
            await commit.stop()
            await self._sink.close()

    async def submit(self, row: ObservationRow) -> None:
        """Return once ``row`` is committed; raise :class:`CommitFailed` if its batch failed."""
        if self._commit is None:
            raise CommitFailed("the observation writer is not running")
        await self._commit.submit(row)

    async def _write(self, rows: list[ObservationRow]) -> Sequence[None]:
        await self._sink.write(rows, outbox=self._outbox, now=self._clock())
        if self._on_commit is not None:
            self._on_commit()
        return [None] * len(rows)
