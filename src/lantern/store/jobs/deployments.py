"""Jobs (deployments) and their executions as the control plane changes and reads them:
creating a job with its executions, the rollout, cancelling, completion, and the read side
(lists, counts) of the HTTP API and the command line.

Synchronous functions of a :class:`~sqlalchemy.Connection`, run in the caller's transaction:
by :meth:`Database.transactions` units of work, or from an async transaction with
``AsyncConnection.run_sync`` (where an audit entry joins the same transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update
from sqlalchemy.sql.elements import BindParameter

from lantern.store.jobs.executions import executions
from lantern.store.jobs.notify_state import chunks
from lantern.store.jobs.records import (
    JOB_COLUMNS,
    NOT_FINISHED,
    ExecStatus,
    ExecutionRecord,
    JobRecord,
    JobStatus,
    execution_record,
    job_record,
)
from lantern.store.schema.jobs import job_executions as _e
from lantern.store.schema.jobs import jobs as _j
from lantern.store.schema.registry import things as _things

__all__ = [
    "cancel_job_row",
    "complete_job",
    "count_unfinished",
    "execution_counts",
    "existing_things",
    "firmware_users",
    "get_job",
    "insert_executions",
    "insert_job",
    "list_executions",
    "list_jobs",
    "project_things",
    "release_planned",
    "set_status_where",
    "start_rollout",
]

_NOT_FINISHED = [s.value for s in NOT_FINISHED]
_JOB_ID: BindParameter[str] = bindparam("p_job")
_GET_JOB = select(*JOB_COLUMNS).where(_j.c.job_id == _JOB_ID)
_LIST_EXECUTIONS = executions().where(_e.c.job_id == _JOB_ID).order_by(_e.c.seq)
_COUNTS = (
    select(_e.c.job_id, _e.c.status, func.count())
    .where(_e.c.job_id.in_(bindparam("p_jobs", expanding=True)))
    .group_by(_e.c.job_id, _e.c.status)
)
_UNFINISHED = select(func.count()).where(_e.c.job_id == _JOB_ID, _e.c.status.in_(_NOT_FINISHED))
_FIRMWARE_USERS = (
    select(_j.c.job_id)
    .where(
        _j.c.firmware_id == bindparam("p_firmware"),
        (_j.c.status == JobStatus.IN_PROGRESS.value)
        | exists().where(_e.c.job_id == _j.c.job_id, _e.c.status.in_(_NOT_FINISHED)),
    )
    .order_by(_j.c.job_id)
)
_PLANNED = (
    select(_e.c.thing_name)
    .where(_e.c.job_id == _JOB_ID, _e.c.status == ExecStatus.PLANNED.value)
    .order_by(_e.c.seq)
)
_RELEASE = (
    update(_e)
    .where(
        _e.c.job_id == _JOB_ID,
        _e.c.thing_name.in_(bindparam("p_things", expanding=True)),
        _e.c.status == ExecStatus.PLANNED.value,
    )
    .values(
        status=ExecStatus.QUEUED.value,
        version_number=1,
        queued_at=bindparam("p_now"),
        last_updated_at=bindparam("p_now"),
    )
    .returning(_e.c.thing_name)
)
_SET_STATUS = (
    update(_e)
    .where(_e.c.job_id == _JOB_ID, _e.c.status.in_(bindparam("p_from", expanding=True)))
    .values(
        status=bindparam("p_to"),
        version_number=_e.c.version_number + 1,
        last_updated_at=bindparam("p_now"),
        in_progress_deadline=None,
        step_deadline=None,
    )
    .returning(_e.c.thing_name)
)
_EXISTING_THINGS = select(_things.c.name).where(
    _things.c.project == bindparam("p_project"),
    _things.c.name.in_(bindparam("p_things", expanding=True)),
)
_PROJECT_THINGS = (
    select(_things.c.name)
    .where(_things.c.project == bindparam("p_project"))
    .order_by(_things.c.name)
)


# -- jobs -----------------------------------------------------------------------------------------
def insert_job(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a ``jobs`` row (``values`` by column name; JSON columns as Python values)."""
    conn.execute(insert(_j), [dict(values)])


def get_job(conn: Connection, job_id: str) -> JobRecord | None:
    row = conn.execute(_GET_JOB, {"p_job": job_id}).first()
    return None if row is None else job_record(row)


def list_jobs(
    conn: Connection,
    project: str | None = None,
    status: JobStatus | None = None,
    kind: str | None = None,
) -> list[JobRecord]:
    """Jobs newest first, optionally of one project, in one status and/or of one kind."""
    query = select(*JOB_COLUMNS).order_by(_j.c.created_at.desc(), _j.c.job_id)
    if project is not None:
        query = query.where(_j.c.project == project)
    if kind is not None:
        query = query.where(_j.c.kind == kind)
    if status is not None:
        query = query.where(_j.c.status == status.value)
    return [job_record(row) for row in conn.execute(query)]


def start_rollout(conn: Connection, job_id: str, now: float) -> None:
    conn.execute(
        update(_j).where(_j.c.job_id == job_id).values(rollout_started_at=now, updated_at=now)
    )


def complete_job(conn: Connection, job_id: str, now: float) -> None:
    conn.execute(
        update(_j)
        .where(_j.c.job_id == job_id)
        .values(status=JobStatus.COMPLETED.value, completed_at=now, updated_at=now)
    )


def cancel_job_row(
    conn: Connection, job_id: str, *, force: bool, reason: str | None, now: float
) -> None:
    conn.execute(
        update(_j)
        .where(_j.c.job_id == job_id)
        .values(
            status=JobStatus.CANCELED.value, force_canceled=force, reason=reason, updated_at=now
        )
    )


def firmware_users(conn: Connection, firmware_id: str) -> list[str]:
    """Jobs still using the image: rolling out, or with executions not finished."""
    return [row[0] for row in conn.execute(_FIRMWARE_USERS, {"p_firmware": firmware_id})]


# -- executions -----------------------------------------------------------------------------------
def insert_executions(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``job_executions`` rows (by column name; ``status_details`` as a dict)."""
    if rows:
        conn.execute(insert(_e), [dict(r) for r in rows])


def list_executions(conn: Connection, job_id: str) -> list[ExecutionRecord]:
    """The job's executions in rollout order."""
    return [execution_record(row) for row in conn.execute(_LIST_EXECUTIONS, {"p_job": job_id})]


def execution_counts(conn: Connection, job_ids: Sequence[str]) -> dict[str, dict[ExecStatus, int]]:
    """``{job: {status: executions}}`` for every job asked (an empty map for a job without)."""
    out: dict[str, dict[ExecStatus, int]] = {job_id: {} for job_id in job_ids}
    for chunk in chunks(list(out)):
        for job_id, status, n in conn.execute(_COUNTS, {"p_jobs": list(chunk)}):
            out[job_id][ExecStatus(status)] = int(n)
    return out


def count_unfinished(conn: Connection, job_id: str) -> int:
    """Executions of the job still PLANNED, QUEUED or IN_PROGRESS."""
    return int(conn.execute(_UNFINISHED, {"p_job": job_id}).scalar_one())


def release_planned(conn: Connection, job_id: str, limit: int | None, now: float) -> list[str]:
    """Queue up to ``limit`` (all when None) PLANNED executions in rollout order; the things."""
    query = _PLANNED if limit is None else _PLANNED.limit(limit)
    names = [row[0] for row in conn.execute(query, {"p_job": job_id})]
    released: list[str] = []
    for chunk in chunks(names):
        params = {"p_job": job_id, "p_things": list(chunk), "p_now": now}
        released.extend(row[0] for row in conn.execute(_RELEASE, params))
    return released


def set_status_where(
    conn: Connection,
    job_id: str,
    from_statuses: Sequence[ExecStatus],
    to_status: ExecStatus,
    now: float,
) -> list[str]:
    """Move every execution of ``job_id`` in ``from_statuses`` to ``to_status`` (a new version,
    deadlines cleared); the things whose execution moved."""
    params = {
        "p_job": job_id,
        "p_from": [s.value for s in from_statuses],
        "p_to": to_status.value,
        "p_now": now,
    }
    return [row[0] for row in conn.execute(_SET_STATUS, params)]


# -- things ---------------------------------------------------------------------------------------
def existing_things(conn: Connection, project: str, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are things of ``project``."""
    found: set[str] = set()
    for chunk in chunks(list(names)):
        params = {"p_project": project, "p_things": list(chunk)}
        found.update(row[0] for row in conn.execute(_EXISTING_THINGS, params))
    return found


def project_things(conn: Connection, project: str) -> list[str]:
    """Every thing of ``project``, by name."""
    return [row[0] for row in conn.execute(_PROJECT_THINGS, {"p_project": project})]
