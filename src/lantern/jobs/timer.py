"""The jobs timer: rollout pacing, timeouts, abort criteria, completion, notifications.

One :meth:`JobsTimer.tick` does, in order:

1. **Timeouts.** IN_PROGRESS executions past their in-progress deadline (set when they started,
   from the job's ``inProgressTimeoutInMinutes``) or their step deadline (``stepTimeoutInMinutes``
   of the device's last StartNext/Update; the earlier deadline wins) become TIMED_OUT.
2. **Abort.** A job whose abort criteria are met is canceled (its QUEUED and PLANNED executions
   are canceled; IN_PROGRESS ones keep running), before more executions are queued.
3. **Rollout.** PLANNED executions are queued: all at once without a rate, else at most
   ``maxPerMinute`` per started minute since the rollout began.
4. **Completion.** A job is COMPLETED when every execution is terminal.
5. **Notifications** for every thing whose executions changed (here or in another process).

Tests drive it with a :class:`~lantern.jobs.clock.ManualClock`; the server runs :meth:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from lantern.gateway import Notifier
from lantern.jobs import notify
from lantern.jobs.clock import Clock
from lantern.jobs.deployments import cancel_job
from lantern.jobs.documents import DocumentRenderer
from lantern.store import Database
from lantern.store import jobs as store
from lantern.store.jobs import ExecStatus, JobRecord, JobStatus

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


class JobsTimer:
    def __init__(
        self,
        db: Database,
        renderer: DocumentRenderer,
        clock: Clock,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.renderer = renderer
        self.clock = clock
        self.notifier = notifier
        self._lock = asyncio.Lock()

    async def tick(self) -> TickReport:
        """One pass of every time-driven duty (see the module docstring)."""
        async with self._lock:
            report = TickReport()
            now = self.clock.now()
            await self._timeouts(now, report)
            async with self.db.connect() as conn:
                active = await store.list_jobs(conn, status=JobStatus.IN_PROGRESS)
            for job in active:
                await self._advance(job, now, report)
            report.published = await self.flush()
            return report

    async def flush(self) -> int:
        """Evaluate things marked as changed and publish their notifications; returns the count."""
        published = 0
        while True:
            async with self.db.transaction() as conn:
                names = await store.dirty_things(conn, _FLUSH_BATCH)
                if not names:
                    return published
                notices = await notify.evaluate(conn, names)
            for topic, payload in notify.messages(notices, self.renderer, self.clock.now()):
                self._publish(topic, payload)
                published += 1

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.publish(topic, payload, qos=1)
        except Exception:
            # Delivery is best effort, as in AWS; the state is already recorded.
            log.exception("could not publish %s", topic)

    async def _timeouts(self, now: float, report: TickReport) -> None:
        async with self.db.connect() as conn:
            due = await store.due_timeouts(conn, now)
        for execution in due:
            async with self.db.transaction() as conn:
                changed = await store.update_execution(
                    conn,
                    execution,
                    status=ExecStatus.TIMED_OUT.value,
                    last_updated_at=now,
                    in_progress_deadline=None,
                    step_deadline=None,
                )
                if changed:  # else the device updated it first; the next tick decides again
                    await store.mark_dirty(conn, [execution.thing_name])
                    report.timed_out.append((execution.job_id, execution.thing_name))

    async def _advance(self, job: JobRecord, now: float, report: TickReport) -> None:
        async with self.db.transaction() as conn:
            counts = await store.execution_counts(conn, job.job_id)
            reason = abort_reason(job, counts)
            if reason is not None:
                await cancel_job(conn, job.job_id, force=False, reason=reason, now=now)
                report.aborted.append(job.job_id)
                log.info("deployment %s %s", job.job_id, reason)
                return
            planned = counts.get(ExecStatus.PLANNED, 0)
            if planned:
                released = await self._release(conn, job, counts, planned, now)
                if released:
                    report.released[job.job_id] = released
            elif job.rollout_started_at is not None and not await store.count_unfinished(
                conn, job.job_id
            ):
                await store.set_job(
                    conn,
                    job.job_id,
                    status=JobStatus.COMPLETED.value,
                    completed_at=now,
                    updated_at=now,
                )
                report.completed.append(job.job_id)

    async def _release(
        self, conn: Any, job: JobRecord, counts: dict[ExecStatus, int], planned: int, now: float
    ) -> int:
        started = job.rollout_started_at
        if started is None:
            started = now
            await store.set_job(conn, job.job_id, rollout_started_at=now, updated_at=now)
        limit: int | None = None
        if job.max_per_minute is not None:
            allowed = job.max_per_minute * (int((now - started) // 60) + 1)
            already = sum(counts.values()) - planned
            limit = max(0, allowed - already)
            if limit == 0:
                return 0
        things = await store.release_planned(conn, job.job_id, limit, now)
        await store.mark_dirty(conn, things)
        return len(things)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; errors are logged, not fatal."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("jobs timer tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
