"""Repository of jobs and job executions (tables in :mod:`lantern.store.schema.jobs`).

Every execution change is a compare-and-swap on ``version_number`` (:func:`update_execution`):
two updates racing on one execution cannot both win, whatever the database. On SQLite the first
write statement of a transaction takes the database's write lock, so code that must read a
consistent picture (notification state) starts its transaction with a write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.schema.jobs import job_executions, job_thing_notify, jobs
from lantern.store.schema.registry import things

__all__ = [
    "PENDING",
    "TERMINAL",
    "ExecStatus",
    "ExecutionRecord",
    "JobRecord",
    "JobStatus",
    "execution_cas",
    "execution_record",
    "execution_select",
    "pending_order",
]

CHUNK = 500  # rows per IN (...) list, well under every database's parameter limit


class ExecStatus(StrEnum):
    """AWS job execution statuses, plus PLANNED: created but not yet queued by the rollout."""

    PLANNED = "PLANNED"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    REMOVED = "REMOVED"
    CANCELED = "CANCELED"


class JobStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


PENDING = (ExecStatus.IN_PROGRESS, ExecStatus.QUEUED)
TERMINAL = frozenset(
    {
        ExecStatus.SUCCEEDED,
        ExecStatus.FAILED,
        ExecStatus.TIMED_OUT,
        ExecStatus.REJECTED,
        ExecStatus.REMOVED,
        ExecStatus.CANCELED,
    }
)
NOT_FINISHED = (ExecStatus.PLANNED, ExecStatus.QUEUED, ExecStatus.IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    project: str
    firmware_id: str | None
    document: dict[str, Any]
    status: JobStatus
    target_kind: str
    target_group: str | None
    max_per_minute: int | None
    in_progress_timeout_minutes: int | None
    abort_criteria: list[dict[str, Any]] | None
    force_canceled: bool
    reason: str | None
    created_at: float
    updated_at: float
    rollout_started_at: float | None
    completed_at: float | None


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One execution, with its job's document and firmware (joined) for rendering."""

    job_id: str
    thing_name: str
    seq: int
    status: ExecStatus
    status_details: dict[str, str]
    version_number: int
    execution_number: int
    queued_at: float | None
    started_at: float | None
    last_updated_at: float
    in_progress_deadline: float | None
    step_deadline: float | None
    document: dict[str, Any]
    firmware_id: str | None
    job_status: JobStatus
    job_timeout_minutes: int | None


def _job(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        job_id=m["job_id"],
        project=m["project"],
        firmware_id=m["firmware_id"],
        document=dict(m["document"]),
        status=JobStatus(m["status"]),
        target_kind=m["target_kind"],
        target_group=m["target_group"],
        max_per_minute=m["max_per_minute"],
        in_progress_timeout_minutes=m["in_progress_timeout_minutes"],
        abort_criteria=m["abort_criteria"],
        force_canceled=bool(m["force_canceled"]),
        reason=m["reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        rollout_started_at=m["rollout_started_at"],
        completed_at=m["completed_at"],
    )


_EXEC_COLUMNS = (
    *job_executions.c,
    jobs.c.document,
    jobs.c.firmware_id,
    jobs.c.status.label("job_status"),
    jobs.c.in_progress_timeout_minutes,
)


def execution_record(row: Row[Any]) -> ExecutionRecord:
    """An :class:`ExecutionRecord` from a row of :func:`execution_select`."""
    m = row._mapping
    return ExecutionRecord(
        job_id=m["job_id"],
        thing_name=m["thing_name"],
        seq=m["seq"],
        status=ExecStatus(m["status"]),
        status_details=dict(m["status_details"]),
        version_number=int(m["version_number"]),
        execution_number=int(m["execution_number"]),
        queued_at=m["queued_at"],
        started_at=m["started_at"],
        last_updated_at=m["last_updated_at"],
        in_progress_deadline=m["in_progress_deadline"],
        step_deadline=m["step_deadline"],
        document=dict(m["document"]),
        firmware_id=m["firmware_id"],
        job_status=JobStatus(m["job_status"]),
        job_timeout_minutes=m["in_progress_timeout_minutes"],
    )


def execution_select() -> Any:
    """Executions joined with their job (document, firmware, status, timeout)."""
    return select(*_EXEC_COLUMNS).select_from(
        job_executions.join(jobs, jobs.c.job_id == job_executions.c.job_id)
    )


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


# -- jobs -----------------------------------------------------------------------------------------
async def insert_job(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(insert(jobs).values(**values))


async def get_job(conn: AsyncConnection, job_id: str) -> JobRecord | None:
    row = (await conn.execute(select(jobs).where(jobs.c.job_id == job_id))).first()
    return _job(row) if row else None


async def list_jobs(
    conn: AsyncConnection, project: str | None = None, status: JobStatus | None = None
) -> list[JobRecord]:
    query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id)
    if project is not None:
        query = query.where(jobs.c.project == project)
    if status is not None:
        query = query.where(jobs.c.status == status.value)
    return [_job(r) for r in await conn.execute(query)]


async def set_job(conn: AsyncConnection, job_id: str, **values: Any) -> None:
    await conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(**values))


async def jobs_using_firmware(conn: AsyncConnection, firmware_id: str) -> list[JobRecord]:
    rows = await conn.execute(select(jobs).where(jobs.c.firmware_id == firmware_id))
    return [_job(r) for r in rows]


# -- executions -----------------------------------------------------------------------------------
async def insert_executions(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(job_executions), list(rows))


async def get_execution(
    conn: AsyncConnection, job_id: str, thing_name: str
) -> ExecutionRecord | None:
    query = execution_select().where(
        job_executions.c.job_id == job_id, job_executions.c.thing_name == thing_name
    )
    row = (await conn.execute(query)).first()
    return execution_record(row) if row else None


def pending_order() -> tuple[Any, ...]:
    """IN_PROGRESS first, then oldest queued first, job id breaking ties (AWS's order)."""
    in_progress_first = case((job_executions.c.status == ExecStatus.IN_PROGRESS.value, 0), else_=1)
    return (in_progress_first, job_executions.c.queued_at, job_executions.c.job_id)


async def pending_executions(conn: AsyncConnection, thing_name: str) -> list[ExecutionRecord]:
    """IN_PROGRESS executions then QUEUED ones, each oldest first (AWS's pending order)."""
    return (await pending_for_things(conn, [thing_name])).get(thing_name, [])


async def pending_for_things(
    conn: AsyncConnection, thing_names: Sequence[str]
) -> dict[str, list[ExecutionRecord]]:
    out: dict[str, list[ExecutionRecord]] = {}
    for chunk in _chunks(list(thing_names)):
        query = (
            execution_select()
            .where(
                job_executions.c.thing_name.in_(chunk),
                job_executions.c.status.in_([s.value for s in PENDING]),
            )
            .order_by(*pending_order())
        )
        for row in await conn.execute(query):
            record = execution_record(row)
            out.setdefault(record.thing_name, []).append(record)
    return out


async def list_executions(conn: AsyncConnection, job_id: str) -> list[ExecutionRecord]:
    query = (
        execution_select().where(job_executions.c.job_id == job_id).order_by(job_executions.c.seq)
    )
    return [execution_record(r) for r in await conn.execute(query)]


async def execution_counts(conn: AsyncConnection, job_id: str) -> dict[ExecStatus, int]:
    query = (
        select(job_executions.c.status, func.count())
        .where(job_executions.c.job_id == job_id)
        .group_by(job_executions.c.status)
    )
    return {ExecStatus(status): int(n) for status, n in await conn.execute(query)}


async def update_execution(conn: AsyncConnection, current: ExecutionRecord, **values: Any) -> bool:
    """Compare-and-swap: apply ``values`` (and bump the version) only if the stored version is
    still ``current.version_number``. False means someone else changed it first."""
    result = await conn.execute(execution_cas(current, values))
    return result.rowcount == 1


def execution_cas(current: ExecutionRecord, values: Mapping[str, Any]) -> Any:
    """The compare-and-swap UPDATE of :func:`update_execution` (one row, or none)."""
    return (
        update(job_executions)
        .where(
            job_executions.c.job_id == current.job_id,
            job_executions.c.thing_name == current.thing_name,
            job_executions.c.version_number == current.version_number,
        )
        .values(version_number=current.version_number + 1, **values)
    )


async def release_planned(
    conn: AsyncConnection, job_id: str, limit: int | None, now: float
) -> list[str]:
    """Queue up to ``limit`` (all when None) PLANNED executions in rollout order."""
    query = (
        select(job_executions.c.thing_name)
        .where(
            job_executions.c.job_id == job_id,
            job_executions.c.status == ExecStatus.PLANNED.value,
        )
        .order_by(job_executions.c.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    names = [r[0] for r in await conn.execute(query)]
    released: list[str] = []
    for chunk in _chunks(names):
        result = await conn.execute(
            update(job_executions)
            .where(
                job_executions.c.job_id == job_id,
                job_executions.c.thing_name.in_(chunk),
                job_executions.c.status == ExecStatus.PLANNED.value,
            )
            .values(
                status=ExecStatus.QUEUED.value,
                version_number=1,
                queued_at=now,
                last_updated_at=now,
            )
            .returning(job_executions.c.thing_name)
        )
        released.extend(r[0] for r in result)
    return released


async def set_status_where(
    conn: AsyncConnection,
    job_id: str,
    from_statuses: Sequence[ExecStatus],
    to_status: ExecStatus,
    now: float,
) -> list[str]:
    """Move every execution of ``job_id`` in ``from_statuses`` to ``to_status``; the things."""
    result = await conn.execute(
        update(job_executions)
        .where(
            job_executions.c.job_id == job_id,
            job_executions.c.status.in_([s.value for s in from_statuses]),
        )
        .values(
            status=to_status.value,
            version_number=job_executions.c.version_number + 1,
            last_updated_at=now,
            in_progress_deadline=None,
            step_deadline=None,
        )
        .returning(job_executions.c.thing_name)
    )
    return [r[0] for r in result]


async def due_timeouts(conn: AsyncConnection, now: float) -> list[ExecutionRecord]:
    """IN_PROGRESS executions whose in-progress or step deadline has passed."""
    query = execution_select().where(
        job_executions.c.status == ExecStatus.IN_PROGRESS.value,
        (job_executions.c.in_progress_deadline <= now) | (job_executions.c.step_deadline <= now),
    )
    return [execution_record(r) for r in await conn.execute(query)]


async def count_unfinished(conn: AsyncConnection, job_id: str) -> int:
    query = select(func.count()).where(
        job_executions.c.job_id == job_id,
        job_executions.c.status.in_([s.value for s in NOT_FINISHED]),
    )
    return int((await conn.execute(query)).scalar_one())


# -- things ---------------------------------------------------------------------------------------
async def existing_things(conn: AsyncConnection, project: str, names: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(names)):
        query = select(things.c.name).where(things.c.project == project, things.c.name.in_(chunk))
        found.update(r[0] for r in await conn.execute(query))
    return found


async def project_things(conn: AsyncConnection, project: str) -> list[str]:
    query = select(things.c.name).where(things.c.project == project).order_by(things.c.name)
    return [r[0] for r in await conn.execute(query)]


# -- notification state ---------------------------------------------------------------------------
def _insert(conn: AsyncConnection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


async def ensure_notify_rows(conn: AsyncConnection, thing_names: Sequence[str]) -> None:
    """Create missing state rows. Being a write, it also takes SQLite's write lock first."""
    rows = [
        {"thing_name": n, "pending_key": "", "head_job_id": None, "dirty": False}
        for n in sorted(set(thing_names))
    ]
    if rows:
        # executemany of one compiled statement: a multi-row VALUES would be compiled anew
        # for every call, which costs far more than running it.
        await conn.execute(_insert(conn)(job_thing_notify).on_conflict_do_nothing(), rows)


async def lock_notify_state(
    conn: AsyncConnection, thing_names: Sequence[str]
) -> dict[str, tuple[str, str | None]]:
    """``{thing: (pending_key, head_job_id)}``, row-locked on PostgreSQL (sorted: no deadlock)."""
    out: dict[str, tuple[str, str | None]] = {}
    for chunk in _chunks(sorted(set(thing_names))):
        query = (
            select(job_thing_notify)
            .where(job_thing_notify.c.thing_name.in_(chunk))
            .order_by(job_thing_notify.c.thing_name)
            .with_for_update()
        )
        for row in await conn.execute(query):
            m = row._mapping
            out[m["thing_name"]] = (m["pending_key"], m["head_job_id"])
    return out


async def save_notify_state(
    conn: AsyncConnection, states: Mapping[str, tuple[str, str | None]]
) -> None:
    if not states:
        return
    stmt = (
        update(job_thing_notify)
        .where(job_thing_notify.c.thing_name == bindparam("t"))
        .values(pending_key=bindparam("k"), head_job_id=bindparam("h"), dirty=False)
    )
    rows = [{"t": name, "k": key, "h": head} for name, (key, head) in states.items()]
    await conn.execute(stmt, rows)  # one executemany


async def clear_dirty(conn: AsyncConnection, thing_names: Sequence[str]) -> None:
    for chunk in _chunks(sorted(set(thing_names))):
        await conn.execute(
            update(job_thing_notify)
            .where(job_thing_notify.c.thing_name.in_(chunk), job_thing_notify.c.dirty == True)  # noqa: E712
            .values(dirty=False)
        )


async def mark_dirty(conn: AsyncConnection, thing_names: Sequence[str]) -> None:
    """Flag things whose executions changed, for the server to evaluate and notify."""
    rows = [
        {"thing_name": n, "pending_key": "", "head_job_id": None, "dirty": True}
        for n in sorted(set(thing_names))
    ]
    if rows:
        stmt = _insert(conn)(job_thing_notify).on_conflict_do_update(
            index_elements=["thing_name"], set_={"dirty": True}
        )
        await conn.execute(stmt, rows)  # executemany, as in ensure_notify_rows


async def dirty_things(conn: AsyncConnection, limit: int) -> list[str]:
    query = (
        select(job_thing_notify.c.thing_name)
        .where(job_thing_notify.c.dirty == True)  # noqa: E712 - SQL expression
        .order_by(job_thing_notify.c.thing_name)
        .limit(limit)
    )
    return [r[0] for r in await conn.execute(query)]


__all__ += [
    "clear_dirty",
    "count_unfinished",
    "dirty_things",
    "due_timeouts",
    "ensure_notify_rows",
    "execution_counts",
    "existing_things",
    "get_execution",
    "get_job",
    "insert_executions",
    "insert_job",
    "jobs_using_firmware",
    "list_executions",
    "list_jobs",
    "lock_notify_state",
    "mark_dirty",
    "pending_executions",
    "pending_for_things",
    "project_things",
    "release_planned",
    "save_notify_state",
    "set_job",
    "set_status_where",
    "update_execution",
]
