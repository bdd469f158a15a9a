"""Device changes to executions (UpdateJobExecution, StartNextPendingJobExecution) by group
commit: many devices' changes per transaction, each answered only after the transaction holding
it has committed.

:class:`ExecutionUpdater` is a :class:`~lantern.store.group_commit.GroupCommit` (bounded queue
with backpressure, one transaction per batch; see its contract) over the store's
:class:`~lantern.store.jobs.JobsUnits`. Inside a batch's transaction (on SQLite under the write
lock: no other writer in between) the changes are applied one by one in arrival order, each with
exactly the checks of a transaction of its own: read the execution, check
``executionNumber``/``expectedVersion``/terminal state, compare-and-swap on ``versionNumber``,
evaluate the thing's notifications. So of updates racing with the same ``expectedVersion``
exactly one wins and the others see the winner's version (VersionMismatch).

A rejected change writes nothing (every check comes before the first write) and does not disturb
the others. If the batch cannot commit, nothing of it is stored and every change of it is
answered InternalError (retry).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lantern.jobs import notify, wire
from lantern.jobs.clock import Clock
from lantern.jobs.errors import Rejected
from lantern.store.group_commit import CommitFailed, GroupCommit
from lantern.store.jobs import TERMINAL, ExecStatus, ExecutionRecord, JobsUnitOfWork, JobsUnits

__all__ = [
    "CAS_ATTEMPTS",
    "Applied",
    "ExecutionUpdater",
    "StartNext",
    "UpdateExecution",
    "check_update",
    "not_found",
    "started",
    "updated",
]

CAS_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Applied:
    """A change's outcome: the execution as stored after it (for StartNext, None when nothing
    is pending) and the notifications it caused."""

    execution: ExecutionRecord | None
    notices: list[notify.ThingNotice]


@dataclass(frozen=True, slots=True)
class UpdateExecution:
    thing_name: str
    job_id: str
    request: wire.UpdateRequest


@dataclass(frozen=True, slots=True)
class StartNext:
    thing_name: str
    request: wire.StartNextRequest


Change = UpdateExecution | StartNext


def not_found(job_id: str, thing: str) -> Rejected:
    return Rejected(
        wire.RESOURCE_NOT_FOUND, f"no execution of job {job_id[:64]!r} for thing {thing}"
    )


def version_mismatch(expected: int, current: ExecutionRecord) -> Rejected:
    return Rejected(
        wire.VERSION_MISMATCH,
        f"expectedVersion {expected} is not the current version {current.version_number}",
        wire.execution_state(current),
    )


def check_update(current: ExecutionRecord, request: wire.UpdateRequest) -> None:
    """Raise the rejection AWS gives ``request`` against ``current``, if any."""
    if (
        request.execution_number is not None
        and request.execution_number != current.execution_number
    ):
        raise not_found(current.job_id, current.thing_name)
    if request.expected_version is not None and request.expected_version != current.version_number:
        raise version_mismatch(request.expected_version, current)
    if current.status in TERMINAL:
        raise Rejected(
            wire.INVALID_STATE_TRANSITION,
            f"the execution is {current.status.value} (terminal); it cannot become "
            f"{request.status.value}",
            wire.execution_state(current),
        )


def _next(current: ExecutionRecord, now: float, **changes: Any) -> ExecutionRecord:
    return dataclasses.replace(
        current, version_number=current.version_number + 1, last_updated_at=now, **changes
    )


def _start_changes(e: ExecutionRecord, now: float) -> dict[str, Any]:
    """Field changes of a move to IN_PROGRESS (timers start on the first one)."""
    changes: dict[str, Any] = {"status": ExecStatus.IN_PROGRESS}
    if e.started_at is None:
        changes["started_at"] = now
        if e.job_timeout_minutes is not None:
            # The in-progress timer starts when the execution enters IN_PROGRESS.
            changes["in_progress_deadline"] = now + e.job_timeout_minutes * 60
    return changes


def started(head: ExecutionRecord, request: wire.StartNextRequest, now: float) -> ExecutionRecord:
    """``head`` (QUEUED) as StartNextPendingJobExecution leaves it."""
    changes = _start_changes(head, now)
    if request.status_details is not None:
        changes["status_details"] = request.status_details
    if request.step_timeout is not None:
        changes["step_deadline"] = now + request.step_timeout * 60
    return _next(head, now, **changes)


def updated(current: ExecutionRecord, request: wire.UpdateRequest, now: float) -> ExecutionRecord:
    """``current`` as ``request`` leaves it (checked by :func:`check_update` first)."""
    changes: dict[str, Any] = {"status": request.status}
    if request.status is ExecStatus.IN_PROGRESS:
        changes.update(_start_changes(current, now))
    else:
        changes["in_progress_deadline"] = None
        changes["step_deadline"] = None
    if request.status_details is not None:
        changes["status_details"] = request.status_details
    if request.step_timeout is not None and request.status is ExecStatus.IN_PROGRESS:
        changes["step_deadline"] = (
            None if request.step_timeout == -1 else now + request.step_timeout * 60
        )
    return _next(current, now, **changes)


class ExecutionUpdater:
    """Applies device changes by group commit. Starts on first use; :meth:`close` at the end."""

    def __init__(
        self, units: JobsUnits, clock: Clock, *, batch_max: int = 256, queue_max: int = 4096
    ) -> None:
        self._units = units
        self._clock = clock
        self._closing = False
        self._writer: GroupCommit[Change, Applied] = GroupCommit(
            self._commit, name="jobs-execution-updates", batch_max=batch_max, queue_max=queue_max
        )
        #: Committed device changes by the execution's status after them (for metrics).
        self.updates: Counter[str] = Counter()

    @property
    def batches(self) -> int:
        """Committed transactions (for tests and metrics)."""
        return self._writer.batches

    async def update(self, thing: str, job_id: str, request: wire.UpdateRequest) -> Applied:
        """Apply ``request``; returns once it is committed, raises :class:`Rejected` otherwise."""
        return await self._submit(UpdateExecution(thing, job_id, request))

    async def start_next(self, thing: str, request: wire.StartNextRequest) -> Applied:
        """Start the thing's next pending execution (an IN_PROGRESS head is returned as it is)."""
        return await self._submit(StartNext(thing, request))

    async def close(self) -> None:
        """Apply what is queued, then stop (a later change is refused)."""
        self._closing = True
        await self._writer.stop()

    async def _submit(self, change: Change) -> Applied:
        if self._closing:
            raise Rejected(wire.INTERNAL_ERROR, "the server is shutting down; retry the request")
        try:
            # A waiter cancelled (connection gone) is still applied: the device may retry it.
            applied = await self._writer.submit(change)
        except CommitFailed:
            # Logged by the GroupCommit; the device is told to retry, not why.
            raise Rejected(wire.INTERNAL_ERROR, "internal error; retry the request") from None
        if applied.execution is not None:
            self.updates[applied.execution.status.value] += 1
        return applied

    async def _commit(self, batch: list[Change]) -> Sequence[Applied | BaseException]:
        return await self._units.write(lambda uow: self._apply_all(uow, batch))

    def _apply_all(self, uow: JobsUnitOfWork, batch: list[Change]) -> list[Applied | Rejected]:
        out: list[Applied | Rejected] = []
        for change in batch:
            try:
                if isinstance(change, UpdateExecution):
                    out.append(self._update(uow, change))
                else:
                    out.append(self._start_next(uow, change))
            except Rejected as exc:
                out.append(exc)
        return out

    def _update(self, uow: JobsUnitOfWork, change: UpdateExecution) -> Applied:
        thing, job_id = change.thing_name, change.job_id
        for _ in range(CAS_ATTEMPTS):
            current = uow.get_execution(job_id, thing)
            if current is None or current.status is ExecStatus.PLANNED:
                raise not_found(job_id, thing)
            check_update(current, change.request)
            new = updated(current, change.request, self._clock.now())
            if uow.replace_execution(current, new):
                if current.status is new.status is ExecStatus.IN_PROGRESS:
                    # A progress report: the pending list's members and order (status, queue
                    # time, job id) are unchanged, so there is nothing to notify; skip the
                    # evaluation (things flagged by other changes are the timer's to flush).
                    return Applied(new, [])
                return Applied(new, notify.evaluate(uow, [thing]))
            # Changed by another process since the read (PostgreSQL; on SQLite the batch holds
            # the write lock): re-check against the newer version.
        raise Rejected(wire.INTERNAL_ERROR, "the execution kept changing; retry the request")

    def _start_next(self, uow: JobsUnitOfWork, change: StartNext) -> Applied:
        thing = change.thing_name
        for _ in range(CAS_ATTEMPTS):
            pending = uow.pending_executions(thing)
            if not pending:
                return Applied(None, [])
            head = pending[0]
            if head.status is ExecStatus.IN_PROGRESS:
                return Applied(head, [])  # returned unchanged, statusDetails included (as AWS)
            new = started(head, change.request, self._clock.now())
            if uow.replace_execution(head, new):
                return Applied(new, notify.evaluate(uow, [thing]))
        raise Rejected(wire.INTERNAL_ERROR, "the execution kept changing; retry the request")
