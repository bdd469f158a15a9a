"""The jobs timer: rollout pacing, timeouts, abort criteria, completion, notifications.

One :meth:`JobsTimer.tick` does, in order:

1. **Timeouts.** IN_PROGRESS executions past their in-progress deadline (set when they started,
   from the job's ``inProgressTimeoutInMinutes``) or their step deadline (``stepTimeoutInMinutes``
   of the device's last StartNext/Update; the earlier deadline wins) become TIMED_OUT.
2. **Abort.** A job whose abort criteria are met is canceled (its QUEUED and PLANNED executions
   are canceled; IN_PROGRESS ones keep running), before more executions are queued.
3. **Rollout.** PLANNED executions are queued: all at once without a rate, else at most
   ``maxPerMinute`` per started minute since the rollout began.
4. **Completion.** A job is COMPLETED when every execution is terminal (a CONTINUOUS job never
   completes: it runs until canceled).

Before abort and rollout, a generic job's retryable executions are re-queued and a CONTINUOUS
job's executions follow its target groups (:mod:`lantern.jobs.lifecycle`). With
``exponentialRate`` the rollout queues at most the current rate per minute of the rollout.
5. **Notifications** for every thing whose executions changed (here or in another process).

Tests drive it with a :class:`~lantern.jobs.clock.ManualClock`; the server runs :meth:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Connection

from lantern.gateway import Notifier
from lantern.jobs import lifecycle, notify
from lantern.jobs.clock import Clock
from lantern.jobs.deployments import cancel_job
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.events import JobEvents
from lantern.store import Database
from lantern.store.jobs import (
    ExecStatus,
    JobRecord,
    JobsStore,
    JobStatus,
    JobsUnitOfWork,
    JobsUnits,
)
from lantern.store.jobs import deployments as repo
from lantern.store.jobs.notify_state import mark_dirty

log = logging.getLogger(__name__)

_FLUSH_BATCH = 500
_EXECUTED = (ExecStatus.SUCCEEDED, ExecStatus.FAILED, ExecStatus.REJECTED, ExecStatus.TIMED_OUT)
_FAILURES = {
    "FAILED": (ExecStatus.FAILED,),
    "REJECTED": (ExecStatus.REJECTED,),
    "TIMED_OUT": (ExecStatus.TIMED_OUT,),
    "ALL": (ExecStatus.FAILED, ExecStatus.REJECTED, ExecStatus.TIMED_OUT),
}


@dataclass
class TickReport:
    timed_out: list[tuple[str, str]] = field(default_factory=list)  # (job, thing)
    aborted: list[str] = field(default_factory=list)
    released: dict[str, int] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (job, thing): CONTINUOUS
    canceled: list[tuple[str, str]] = field(default_factory=list)  # (job, thing): aborts
    published: int = 0


def abort_reason(job: JobRecord, counts: dict[ExecStatus, int]) -> str | None:
    """Why ``job`` must abort now, or None."""
    executed = sum(counts.get(s, 0) for s in _EXECUTED)
    for criterion in job.abort_criteria or []:
        if executed < int(criterion["minNumberOfExecutedThings"]) or executed == 0:
            continue
        kind = str(criterion["failureType"])
        failures = sum(counts.get(s, 0) for s in _FAILURES[kind])
        percent = 100.0 * failures / executed
        if percent >= float(criterion["thresholdPercentage"]):
            return (
                f"aborted: {failures} of {executed} executed things {kind} ({percent:.2f}% >= "
                f"{criterion['thresholdPercentage']}%)"
            )
    return None


@dataclass(frozen=True, slots=True)
class _Advanced:
    aborted: str | None = None  # the reason
    released: int = 0
    completed: bool = False
    removed: tuple[str, ...] = ()  # things whose execution became REMOVED
    canceled: tuple[str, ...] = ()  # things whose execution the abort canceled


class JobsTimer:
    """The time-driven duties, each a unit of work of the database (on a SQLite file, on its
    writer thread with the device updates: they take turns instead of waiting on a lock)."""

    def __init__(
        self,
        db: Database,
        renderer: DocumentRenderer,
        clock: Clock,
        notifier: Notifier | None = None,
        units: JobsUnits | None = None,
    ) -> None:
        self.db = db
        self.renderer = renderer
        self.clock = clock
        self.notifier = notifier
        self.units = units if units is not None else JobsStore(db.transactions)
        self._lock = asyncio.Lock()
        #: What the timer did, for metrics: executions timed out and released (queued by the
        #: rollout), deployments completed and aborted, notifications published by kind.
        self.timed_out = 0
        self.released = 0
        self.completed = 0
        self.aborted = 0
        self.notifications: Counter[str] = Counter()
        #: ``$aws/events/job|jobExecution/...`` publisher; None = off (``aws.events``).
        self.events: JobEvents | None = None

    async def tick(self) -> TickReport:
        """One pass of every time-driven duty (see the module docstring)."""
        async with self._lock:
            report = TickReport()
            now = self.clock.now()
            report.timed_out = await self.units.write(lambda uow: _time_out(uow, now))
            transactions = self.db.transactions
            active = await transactions.read(
                lambda c: repo.list_jobs(c, status=JobStatus.IN_PROGRESS)
            )
            for job in active:
                advanced = await transactions.write(
                    functools.partial(_advance, listed=job, now=now)
                )
                if advanced.aborted is not None:
                    report.aborted.append(job.job_id)
                    log.info("deployment %s %s", job.job_id, advanced.aborted)
                if advanced.released:
                    report.released[job.job_id] = advanced.released
                if advanced.completed:
                    report.completed.append(job.job_id)
                report.removed.extend((job.job_id, thing) for thing in advanced.removed)
                report.canceled.extend((job.job_id, thing) for thing in advanced.canceled)
            if self.events is not None:
                await self._publish_events(report, now)
            report.published = await self.flush()
            self.timed_out += len(report.timed_out)
            self.released += sum(report.released.values())
            self.completed += len(report.completed)
            self.aborted += len(report.aborted)
            return report

    async def _publish_events(self, report: TickReport, now: float) -> None:
        """The jobs events of this tick's changes (all committed by now)."""
        events = self.events
        assert events is not None
        for job_id, thing in report.timed_out:
            events.execution(job_id, thing, ExecStatus.TIMED_OUT, {}, now)
        for job_id, thing in report.removed:
            events.execution(job_id, thing, ExecStatus.REMOVED, {}, now)
        for job_id, thing in report.canceled:
            events.execution(job_id, thing, ExecStatus.CANCELED, {}, now)
        ended = [(j, "completed") for j in report.completed] + [
            (j, "canceled") for j in report.aborted
        ]
        for job_id, operation in ended:
            job, counts = await self.db.transactions.read(
                functools.partial(_job_and_counts, job_id=job_id)
            )
            if job is not None:
                events.job(job, operation, counts, now)

    async def flush(self) -> int:
        """Evaluate things marked as changed and publish their notifications; returns the count."""
        published = 0
        while True:
            found, notices = await self.units.write(_evaluate_dirty)
            if not found:
                return published
            for topic, payload in notify.messages(notices, self.renderer, self.clock.now()):
                self._publish(topic, payload)
                published += 1

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.publish(topic, payload, qos=1)
            self.notifications[notify.kind(topic)] += 1
        except Exception:
            # Delivery is best effort, as in AWS; the state is already recorded.
            log.exception("could not publish %s", topic)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; errors are logged, not fatal."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("jobs timer tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def _job_and_counts(
    conn: Connection, job_id: str
) -> tuple[JobRecord | None, dict[ExecStatus, int]]:
    return repo.get_job(conn, job_id), repo.execution_counts(conn, [job_id])[job_id]


def _evaluate_dirty(uow: JobsUnitOfWork) -> tuple[int, list[notify.ThingNotice]]:
    names = uow.dirty_things(_FLUSH_BATCH)
    return len(names), notify.evaluate(uow, names)


def _time_out(uow: JobsUnitOfWork, now: float) -> list[tuple[str, str]]:
    """Time out the due executions; the (job, thing) pairs that were."""
    timed_out: list[tuple[str, str]] = []
    for execution in uow.due_timeouts(now):
        new = dataclasses.replace(
            execution,
            status=ExecStatus.TIMED_OUT,
            version_number=execution.version_number + 1,
            last_updated_at=now,
            in_progress_deadline=None,
            step_deadline=None,
        )
        # Not replaced: the device updated it first; the next tick decides again.
        if uow.replace_execution(execution, new):
            uow.mark_dirty([execution.thing_name])
            timed_out.append((execution.job_id, execution.thing_name))
    return timed_out


def _advance(conn: Connection, listed: JobRecord, now: float) -> _Advanced:
    """Abort, release or complete the job, in one transaction."""
    job = repo.get_job(conn, listed.job_id)
    if job is None or job.status is not JobStatus.IN_PROGRESS:
        return _Advanced()  # canceled (or deleted) since it was listed
    lifecycle.retry(conn, job, now)
    removed: tuple[str, ...] = ()
    if job.continuous:
        removed = tuple(lifecycle.reconcile(conn, job, now)[1])
    counts = repo.execution_counts(conn, [job.job_id])[job.job_id]
    reason = abort_reason(job, counts)
    if reason is not None:
        canceled = cancel_job(conn, job.job_id, force=False, reason=reason, now=now)
        return _Advanced(aborted=reason, removed=removed, canceled=tuple(canceled))
    planned = counts.get(ExecStatus.PLANNED, 0)
    if planned:
        return _Advanced(released=_release(conn, job, counts, planned, now), removed=removed)
    if job.continuous:
        return _Advanced(removed=removed)  # a continuous job runs until it is canceled
    if job.rollout_started_at is None:
        if counts:
            return _Advanced()
        repo.start_rollout(conn, job.job_id, now)  # a job without executions (an empty group)
    if not repo.count_unfinished(conn, job.job_id):
        repo.complete_job(conn, job.job_id, now)
        return _Advanced(completed=True)
    return _Advanced()


def _release(
    conn: Connection, job: JobRecord, counts: dict[ExecStatus, int], planned: int, now: float
) -> int:
    started = job.rollout_started_at
    if started is None:
        started = now
        repo.start_rollout(conn, job.job_id, now)
    limit: int | None = None
    exponential = (job.options or {}).get("exponentialRate")
    if exponential is not None:
        limit = lifecycle.exponential_limit(conn, job, exponential, counts, started, now)
        if limit == 0:
            return 0
    elif job.max_per_minute is not None:
        allowed = job.max_per_minute * (int((now - started) // 60) + 1)
        already = sum(counts.values()) - planned
        limit = max(0, allowed - already)
        if limit == 0:
            return 0
    things = repo.release_planned(conn, job.job_id, limit, now)
    mark_dirty(conn, things)
    return len(things)
