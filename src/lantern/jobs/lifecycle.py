"""The timer's duties for generic jobs, each inside the transaction of one job's advance
(:func:`lantern.jobs.timer._advance`):

* :func:`retry`: FAILED and TIMED_OUT executions are re-queued while the job's
  ``jobExecutionsRetryConfig`` allows (per failure type; ``ALL`` counts both): a new execution,
  ``executionNumber`` + 1, ``versionNumber`` 1, QUEUED now.
* :func:`reconcile`: a CONTINUOUS job follows its target groups: a thing that joined gets an
  execution (QUEUED at once: members added later are not rate limited), one that left while its
  execution was not finished gets REMOVED, one that came back after REMOVED gets a new execution
  (retry counters reset).
* :func:`exponential_limit`: how many more executions the rollout may queue this minute under
  ``exponentialRate``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from lantern.jobs.deployments import planned
from lantern.jobs.generic import target_things
from lantern.store.jobs import NOT_FINISHED, ExecStatus, ExecutionRecord, JobRecord
from lantern.store.jobs import control as control_store
from lantern.store.jobs import deployments as store
from lantern.store.jobs.notify_state import mark_dirty

_RETRYABLE = (ExecStatus.FAILED, ExecStatus.TIMED_OUT)


def retries_allowed(criteria: list[dict[str, Any]], e: ExecutionRecord) -> bool:
    """Whether ``e`` (FAILED or TIMED_OUT) has a retry left under ``criteria``."""
    by_type = {str(c["failureType"]): int(c["numberOfRetries"]) for c in criteria}
    kind = e.status.value
    if kind in by_type:
        used = e.retries_failed if e.status is ExecStatus.FAILED else e.retries_timed_out
        return used < by_type[kind]
    if "ALL" in by_type:
        return e.retries_failed + e.retries_timed_out < by_type["ALL"]
    return False


def retry(conn: Connection, job: JobRecord, now: float) -> list[str]:
    """Re-queue the job's retryable executions; the things re-queued."""
    criteria = (job.options or {}).get("retry") or []
    if not criteria:
        return []
    requeued: list[str] = []
    for e in control_store.executions_of_job(conn, job.job_id, statuses=_RETRYABLE):
        if not retries_allowed(criteria, e):
            continue
        failed = e.retries_failed + (e.status is ExecStatus.FAILED)
        timed_out = e.retries_timed_out + (e.status is ExecStatus.TIMED_OUT)
        if control_store.requeue(conn, e, now, retries_failed=failed, retries_timed_out=timed_out):
            requeued.append(e.thing_name)
    mark_dirty(conn, requeued)
    return requeued


def reconcile(conn: Connection, job: JobRecord, now: float) -> tuple[list[str], list[str]]:
    """Follow the target groups of a CONTINUOUS job; (things added, things removed)."""
    targets = job.targets or {}
    expected = target_things(
        conn, job.project, targets.get("things", []), targets.get("groups", []), strict=False
    )
    wanted = set(expected)
    statuses = control_store.execution_statuses(conn, job.job_id)
    new = [t for t in expected if t not in statuses]
    rows = []
    for seq, thing in enumerate(new, start=len(statuses)):
        row = planned(job.job_id, thing, seq, now)
        row.update(status=ExecStatus.QUEUED.value, version_number=1, queued_at=now)
        rows.append(row)
    store.insert_executions(conn, rows)
    back = [t for t in expected if statuses.get(t) is ExecStatus.REMOVED]
    gone = [t for t, s in statuses.items() if s in NOT_FINISHED and t not in wanted]
    changed = [e for e in control_store.executions_of_job(conn, job.job_id, things=back + gone)]
    added = list(new)
    removed: list[str] = []
    for e in changed:
        if e.thing_name in wanted:
            if control_store.requeue(conn, e, now, retries_failed=0, retries_timed_out=0):
                added.append(e.thing_name)
        elif control_store.set_execution_status(conn, e, ExecStatus.REMOVED, now):
            removed.append(e.thing_name)
    mark_dirty(conn, added + removed)
    return added, removed


def exponential_rate(config: dict[str, Any], counts: dict[ExecStatus, int]) -> float:
    """The rollout's rate now: the base rate times the factor per step reached."""
    criteria = config["rateIncreaseCriteria"]
    if "numberOfNotifiedThings" in criteria:
        done = sum(n for s, n in counts.items() if s is not ExecStatus.PLANNED)
        step = int(criteria["numberOfNotifiedThings"])
    else:
        done = counts.get(ExecStatus.SUCCEEDED, 0)
        step = int(criteria["numberOfSucceededThings"])
    steps = done // max(step, 1)
    return float(config["baseRatePerMinute"]) * float(config["incrementFactor"]) ** steps


def exponential_limit(
    conn: Connection,
    job: JobRecord,
    config: dict[str, Any],
    counts: dict[ExecStatus, int],
    started: float,
    now: float,
) -> int:
    """Executions the rollout may still queue in the current minute (since ``started``)."""
    minute_start = started + 60 * int((now - started) // 60)
    already = control_store.queued_since(conn, job.job_id, minute_start)
    return max(0, int(exponential_rate(config, counts)) - already)
