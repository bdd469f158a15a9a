"""Control-plane changes of generic jobs beyond a deployment's: updating a job's settings,
deleting jobs and executions, re-queuing an execution (a retry, or a thing back in a continuous
job's group), and the reads the AWS control plane needs (a thing's executions, a job's
executions by status).

Synchronous functions of a :class:`~sqlalchemy.Connection`, run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from lantern.store.jobs.executions import executions
from lantern.store.jobs.notify_state import chunks
from lantern.store.jobs.records import ExecStatus, ExecutionRecord, execution_record
from lantern.store.schema.jobs import job_executions as _e
from lantern.store.schema.jobs import jobs as _j

__all__ = [
    "delete_execution",
    "delete_job",
    "execution_statuses",
    "executions_of_job",
    "executions_of_thing",
    "queued_since",
    "requeue",
    "set_execution_status",
    "update_job",
]


def update_job(conn: Connection, job_id: str, values: Mapping[str, Any]) -> None:
    """Change columns of a ``jobs`` row (by column name)."""
    conn.execute(update(_j).where(_j.c.job_id == job_id).values(**dict(values)))


def delete_job(conn: Connection, job_id: str) -> list[str]:
    """Delete the job and its executions; the things whose executions were deleted."""
    things = [row[0] for row in conn.execute(select(_e.c.thing_name).where(_e.c.job_id == job_id))]
    conn.execute(delete(_e).where(_e.c.job_id == job_id))
    conn.execute(delete(_j).where(_j.c.job_id == job_id))
    return things


def delete_execution(conn: Connection, job_id: str, thing_name: str) -> bool:
    result = conn.execute(delete(_e).where(_e.c.job_id == job_id, _e.c.thing_name == thing_name))
    return bool(result.rowcount)


def set_execution_status(
    conn: Connection,
    current: ExecutionRecord,
    status: ExecStatus,
    now: float,
    status_details: Mapping[str, str] | None = None,
) -> bool:
    """Move one execution to ``status`` (a new version, deadlines cleared) if its version is
    still ``current``'s; False when it changed meanwhile."""
    values: dict[str, Any] = {
        "status": status.value,
        "version_number": current.version_number + 1,
        "last_updated_at": now,
        "in_progress_deadline": None,
        "step_deadline": None,
    }
    if status_details is not None:
        values["status_details"] = dict(status_details)
    result = conn.execute(
        update(_e)
        .where(
            _e.c.job_id == current.job_id,
            _e.c.thing_name == current.thing_name,
            _e.c.version_number == current.version_number,
        )
        .values(**values)
    )
    return bool(result.rowcount)


def requeue(
    conn: Connection,
    current: ExecutionRecord,
    now: float,
    *,
    retries_failed: int,
    retries_timed_out: int,
) -> bool:
    """Start a new execution (``executionNumber`` + 1, ``versionNumber`` 1, QUEUED now) in
    place of ``current`` if it has not changed meanwhile."""
    result = conn.execute(
        update(_e)
        .where(
            _e.c.job_id == current.job_id,
            _e.c.thing_name == current.thing_name,
            _e.c.version_number == current.version_number,
            _e.c.execution_number == current.execution_number,
        )
        .values(
            status=ExecStatus.QUEUED.value,
            status_details={},
            version_number=1,
            execution_number=current.execution_number + 1,
            queued_at=now,
            started_at=None,
            last_updated_at=now,
            in_progress_deadline=None,
            step_deadline=None,
            retries_failed=retries_failed,
            retries_timed_out=retries_timed_out,
        )
    )
    return bool(result.rowcount)


def execution_statuses(conn: Connection, job_id: str) -> dict[str, ExecStatus]:
    """``{thing: status}`` of every execution of the job."""
    query = select(_e.c.thing_name, _e.c.status).where(_e.c.job_id == job_id)
    return {name: ExecStatus(status) for name, status in conn.execute(query)}


def executions_of_job(
    conn: Connection,
    job_id: str,
    statuses: Sequence[ExecStatus] | None = None,
    things: Sequence[str] | None = None,
) -> list[ExecutionRecord]:
    """The job's executions in rollout order, optionally only in ``statuses`` / of ``things``."""
    query = executions().where(_e.c.job_id == job_id).order_by(_e.c.seq, _e.c.thing_name)
    if statuses is not None:
        query = query.where(_e.c.status.in_([s.value for s in statuses]))
    if things is None:
        return [execution_record(row) for row in conn.execute(query)]
    out: list[ExecutionRecord] = []
    for chunk in chunks(sorted(set(things))):
        out.extend(
            execution_record(row) for row in conn.execute(query.where(_e.c.thing_name.in_(chunk)))
        )
    return out


def executions_of_thing(conn: Connection, thing_name: str) -> list[ExecutionRecord]:
    """Every execution of the thing, newest job first."""
    query = (
        executions()
        .where(_e.c.thing_name == thing_name)
        .order_by(_j.c.created_at.desc(), _e.c.job_id)
    )
    return [execution_record(row) for row in conn.execute(query)]


def queued_since(conn: Connection, job_id: str, since: float) -> int:
    """Executions of the job queued at or after ``since`` (the rollout's current minute)."""
    query = select(func.count()).where(_e.c.job_id == job_id, _e.c.queued_at >= since)
    return int(conn.execute(query).scalar_one())
