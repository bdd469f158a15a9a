"""UpdateJobExecution by group commit: many device updates per transaction, each answered only
after the transaction holding its change has committed.

While one batch commits, new updates queue up; the next batch takes all of them (up to
``batch_max``), so under load a batch grows to match the commit latency and throughput no longer
costs one fsync per update, while a lone update waits for no timer. Inside the batch's transaction
(on SQLite opened with ``BEGIN IMMEDIATE``: no other writer in between) the updates are applied
one by one in arrival order, each with exactly the checks of a transaction of its own: read the
execution, check ``executionNumber``/``expectedVersion``/terminal state, compare-and-swap on
``versionNumber``, evaluate the thing's notifications. So of updates racing with the same
``expectedVersion`` exactly one wins and the others see the winner's version (VersionMismatch).

A rejected update writes nothing and does not disturb the others. If the batch cannot commit,
nothing of it is stored and every update of it is answered InternalError (retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from lantern.jobs import notify, wire
from lantern.jobs.clock import Clock
from lantern.jobs.errors import Rejected
from lantern.store import Database
from lantern.store import jobs_sync as store_sync
from lantern.store.batch import BatchTransactions
from lantern.store.jobs import TERMINAL, ExecStatus, ExecutionRecord

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Applied:
    """An accepted update: the execution as stored after it, and the notifications it caused."""

    execution: ExecutionRecord
    notices: list[notify.ThingNotice]


@dataclass(frozen=True, slots=True)
class _Update:
    thing_name: str
    job_id: str
    request: wire.UpdateRequest
    future: asyncio.Future[Applied]


def not_found(job_id: str, thing: str) -> Rejected:
    return Rejected(
        wire.RESOURCE_NOT_FOUND, f"no execution of job {job_id[:64]!r} for thing {thing}"
    )


def start_values(e: ExecutionRecord, now: float) -> dict[str, Any]:
    """Column values of a move to IN_PROGRESS (timers start on the first one)."""
    values: dict[str, Any] = {
        "status": ExecStatus.IN_PROGRESS.value,
        "last_updated_at": now,
    }
    if e.started_at is None:
        values["started_at"] = now
        if e.job_timeout_minutes is not None:
            # The in-progress timer starts when the execution enters IN_PROGRESS.
            values["in_progress_deadline"] = now + e.job_timeout_minutes * 60
    return values


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


def version_mismatch(expected: int, current: ExecutionRecord) -> Rejected:
    return Rejected(
        wire.VERSION_MISMATCH,
        f"expectedVersion {expected} is not the current version {current.version_number}",
        wire.execution_state(current),
    )


def update_values(
    current: ExecutionRecord, request: wire.UpdateRequest, now: float
) -> dict[str, Any]:
    """Column values of applying ``request`` to ``current`` (the version is bumped apart)."""
    values: dict[str, Any] = {"status": request.status.value, "last_updated_at": now}
    if request.status is ExecStatus.IN_PROGRESS:
        values.update(start_values(current, now))
    else:
        values["in_progress_deadline"] = None
        values["step_deadline"] = None
    if request.status_details is not None:
        values["status_details"] = request.status_details
    if request.step_timeout is not None and request.status is ExecStatus.IN_PROGRESS:
        values["step_deadline"] = (
            None if request.step_timeout == -1 else now + request.step_timeout * 60
        )
    return values


def _after(current: ExecutionRecord, values: dict[str, Any]) -> ExecutionRecord:
    # What the compare-and-swap stored: nothing else can have changed the row in between.
    fields = {**values, "status": ExecStatus(values["status"])}
    return dataclasses.replace(current, version_number=current.version_number + 1, **fields)


class ExecutionUpdater:
    """Applies UpdateJobExecution requests by group commit. Starts on first use; :meth:`close`."""

    def __init__(self, db: Database, clock: Clock, *, batch_max: int = 256) -> None:
        self._clock = clock
        self._batch_max = batch_max
        self._transactions = BatchTransactions(db)
        self._pending: list[_Update] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # committed transactions (for tests and metrics)

    async def update(self, thing: str, job_id: str, request: wire.UpdateRequest) -> Applied:
        """Apply ``request``; returns once it is committed, raises :class:`Rejected` otherwise."""
        if self._closing:
            raise Rejected(wire.INTERNAL_ERROR, "the server is shutting down; retry the request")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="jobs-execution-updates")
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._pending.append(_Update(thing, job_id, request, future))
        self._wakeup.set()
        # A waiter cancelled (connection gone) is still applied: the device may retry it.
        return await future

    async def close(self) -> None:
        """Apply what is queued, then stop (a later update is refused)."""
        self._closing = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._transactions.close()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._pending[: self._batch_max]
            del self._pending[: self._batch_max]
            await self._commit(batch)

    async def _commit(self, batch: list[_Update]) -> None:
        try:
            outcomes = await self._transactions.run(lambda conn: self._apply_all(conn, batch))
        except Exception:
            log.exception("a batch of %d job execution updates failed", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(
                        Rejected(wire.INTERNAL_ERROR, "internal error; retry the request")
                    )
            return
        self.batches += 1
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, Rejected):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    def _apply_all(self, conn: Connection, batch: list[_Update]) -> list[Applied | Rejected]:
        out: list[Applied | Rejected] = []
        for item in batch:
            try:
                out.append(self._apply(conn, item.thing_name, item.job_id, item.request))
            except Rejected as exc:
                out.append(exc)
        return out

    def _apply(
        self, conn: Connection, thing: str, job_id: str, request: wire.UpdateRequest
    ) -> Applied:
        for _ in range(CAS_ATTEMPTS):
            current = store_sync.get_execution(conn, job_id, thing)
            if current is None or current.status is ExecStatus.PLANNED:
                raise not_found(job_id, thing)
            check_update(current, request)
            values = update_values(current, request, self._clock.now())
            if not store_sync.update_execution(conn, current, **values):
                # Changed by another process since the read (PostgreSQL; on SQLite the batch
                # holds the write lock): re-check against the newer version.
                continue
            notice = notify.evaluate_thing(conn, thing)
            return Applied(_after(current, values), [notice] if notice else [])
        raise Rejected(wire.INTERNAL_ERROR, "the execution kept changing; retry the request")
