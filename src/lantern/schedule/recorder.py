"""The scheduler's results writer: delivery results and completions, group-committed.

A :class:`~lantern.store.group_commit.GroupCommit` over
:meth:`~lantern.store.schedule_claims.OccurrenceClaims.record`: results and completions of all
occurrences in flight share one transaction per batch. The queue is bounded, so a database that
falls behind slows the senders down (each send waits for its result to be committed before the
occurrence moves on) instead of piling results up in memory.

A result or completion that cannot be committed raises :class:`ResultNotRecorded` to the
occurrence that sent it. Nothing is then reported done that is not: the occurrence stays
``claimed`` in the store, its scheduler stops working on it and stops renewing its lease, and
once the lease expires a scheduler (this one or another) takes it over and sends to the
destinations without a recorded result (see :mod:`lantern.store.schedule_claims`). A
destination whose send went out but whose result was lost is sent once more then: the
"accepted, not yet committed" duplicate window, widened by the outage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lantern.schedule.errors import ScheduleError
from lantern.store.group_commit import CommitFailed, GroupCommit
from lantern.store.schedule_claims import Completion, DeliveryResult, OccurrenceClaims

__all__ = ["BATCH_MAX", "QUEUE_MAX", "Recorder", "ResultNotRecorded"]

BATCH_MAX = 1000
QUEUE_MAX = 10_000


class ResultNotRecorded(ScheduleError):
    """A delivery result or completion could not be committed (the occurrence stays claimed)."""

    code = "result_not_recorded"


@dataclass(frozen=True, slots=True)
class _Entry:
    result: DeliveryResult | None
    completion: Completion | None


class Recorder:
    """Commits delivery results and completions in batches (module docstring)."""

    def __init__(
        self,
        claims: OccurrenceClaims,
        write_lock: asyncio.Lock,
        *,
        batch_max: int = BATCH_MAX,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.claims = claims
        self.write_lock = write_lock
        self._aborted = False
        self._limits = (batch_max, queue_max)
        self.writer = self._new_writer()

    def _new_writer(self) -> GroupCommit[_Entry, None]:
        batch_max, queue_max = self._limits
        return GroupCommit(
            self._commit, name="schedule-recorder", batch_max=batch_max, queue_max=queue_max
        )

    async def _commit(self, batch: list[_Entry]) -> list[None]:
        if self._aborted:
            raise ResultNotRecorded("the scheduler was aborted: nothing more is recorded")
        results = [e.result for e in batch if e.result is not None]
        completions = [e.completion for e in batch if e.completion is not None]
        async with self.write_lock:
            await self.claims.record(results, completions)
        return [None] * len(batch)

    async def record(self, result: DeliveryResult) -> None:
        """Return once ``result`` is committed; :class:`ResultNotRecorded` if it is not."""
        await self._submit(_Entry(result, None), result.occurrence_id)

    async def complete(self, completion: Completion, result: DeliveryResult | None = None) -> None:
        """Return once the occurrence is closed (with its last ``result``, if given, in the same
        transaction); :class:`ResultNotRecorded` if it is not."""
        await self._submit(_Entry(result, completion), completion.occurrence_id)

    async def _submit(self, entry: _Entry, occurrence_id: int) -> None:
        try:
            await self.writer.submit(entry)
        except CommitFailed as exc:
            raise ResultNotRecorded(
                f"occurrence {occurrence_id}: its result could not be recorded"
            ) from exc

    async def close(self) -> None:
        """Commit what is queued, then stop (a later submission starts a new writer)."""
        await self.writer.stop()
        self.writer = self._new_writer()  # a stopped writer refuses requests; start() may follow

    def refuse(self) -> None:
        """From now on commit nothing (what a killed process leaves behind) until :meth:`abort`
        returns; every queued or new request fails."""
        self._aborted = True

    async def abort(self) -> None:
        """Commit nothing more, then stop (see :meth:`refuse`)."""
        self.refuse()
        await self.writer.stop()
        self._aborted = False
        self.writer = self._new_writer()
