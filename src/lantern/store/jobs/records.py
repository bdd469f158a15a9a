"""What the jobs tables hold, as records, and the one place rows become records.

Every statement that reads jobs or executions selects :data:`JOB_COLUMNS` or
:data:`EXECUTION_COLUMNS`, and :func:`job_record` / :func:`execution_record` turn its rows into
records. JSON columns are selected as text (``CAST(... AS TEXT)``) and booleans as integers, so a
row has the same plain values whichever way it was read (SQLite's ``sqlite3`` driver through
:class:`~lantern.store.sqlite.prepared.Prepared`, SQLAlchemy on SQLite or on PostgreSQL, where
asyncpg would otherwise decode JSON itself); the record functions decode them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, Text, cast, type_coerce
from sqlalchemy.sql import ColumnElement

from lantern.store.schema.jobs import job_executions, job_thing_notify, jobs

__all__ = [
    "EXECUTION_COLUMNS",
    "JOB_COLUMNS",
    "NOTIFY_COLUMNS",
    "NOT_FINISHED",
    "PENDING",
    "TERMINAL",
    "ExecStatus",
    "ExecutionRecord",
    "JobRecord",
    "JobStatus",
    "NotifyState",
    "execution_record",
    "job_record",
    "notify_state",
]


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
    kind: str = "firmware"
    description: str | None = None
    target_selection: str = "SNAPSHOT"
    targets: dict[str, list[str]] | None = None
    options: dict[str, Any] | None = None
    comment: str | None = None

    @property
    def continuous(self) -> bool:
        return self.target_selection == "CONTINUOUS"


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
    retries_failed: int = 0
    retries_timed_out: int = 0
    job_options: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NotifyState:
    """What the last ``notify``/``notify-next`` told a thing, and whether it must be evaluated."""

    pending_key: str
    head_job_id: str | None
    dirty: bool


def _text(column: Any) -> ColumnElement[str]:
    return cast(column, Text)


def _flag(column: Any) -> ColumnElement[int]:
    return type_coerce(column, Integer)


def _labelled(columns: Sequence[tuple[str, Any]]) -> tuple[ColumnElement[Any], ...]:
    return tuple(column.label(name) for name, column in columns)


# Column order is the order the record functions unpack (checked at import, below).
_JOB = (
    ("job_id", jobs.c.job_id),
    ("project", jobs.c.project),
    ("firmware_id", jobs.c.firmware_id),
    ("document", _text(jobs.c.document)),
    ("status", jobs.c.status),
    ("target_kind", jobs.c.target_kind),
    ("target_group", jobs.c.target_group),
    ("max_per_minute", jobs.c.max_per_minute),
    ("in_progress_timeout_minutes", jobs.c.in_progress_timeout_minutes),
    ("abort_criteria", _text(jobs.c.abort_criteria)),
    ("force_canceled", _flag(jobs.c.force_canceled)),
    ("reason", jobs.c.reason),
    ("created_at", jobs.c.created_at),
    ("updated_at", jobs.c.updated_at),
    ("rollout_started_at", jobs.c.rollout_started_at),
    ("completed_at", jobs.c.completed_at),
    ("kind", jobs.c.kind),
    ("description", jobs.c.description),
    ("target_selection", jobs.c.target_selection),
    ("targets", _text(jobs.c.targets)),
    ("options", _text(jobs.c.options)),
    ("comment", jobs.c.comment),
)
_EXECUTION = (
    ("job_id", job_executions.c.job_id),
    ("thing_name", job_executions.c.thing_name),
    ("seq", job_executions.c.seq),
    ("status", job_executions.c.status),
    ("status_details", _text(job_executions.c.status_details)),
    ("version_number", job_executions.c.version_number),
    ("execution_number", job_executions.c.execution_number),
    ("queued_at", job_executions.c.queued_at),
    ("started_at", job_executions.c.started_at),
    ("last_updated_at", job_executions.c.last_updated_at),
    ("in_progress_deadline", job_executions.c.in_progress_deadline),
    ("step_deadline", job_executions.c.step_deadline),
    ("document", _text(jobs.c.document)),
    ("firmware_id", jobs.c.firmware_id),
    ("job_status", jobs.c.status),
    ("job_timeout_minutes", jobs.c.in_progress_timeout_minutes),
    ("retries_failed", job_executions.c.retries_failed),
    ("retries_timed_out", job_executions.c.retries_timed_out),
    ("job_options", _text(jobs.c.options)),
)
_NOTIFY = (
    ("pending_key", job_thing_notify.c.pending_key),
    ("head_job_id", job_thing_notify.c.head_job_id),
    ("dirty", _flag(job_thing_notify.c.dirty)),
)
JOB_COLUMNS = _labelled(_JOB)
"""Select these from ``jobs`` for :func:`job_record`."""
EXECUTION_COLUMNS = _labelled(_EXECUTION)
"""Select these from ``job_executions`` joined with ``jobs`` for :func:`execution_record`."""
NOTIFY_COLUMNS = _labelled(_NOTIFY)
"""Select these from ``job_thing_notify`` for :func:`notify_state`."""


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def job_record(row: Sequence[Any]) -> JobRecord:
    """A :class:`JobRecord` from a row of :data:`JOB_COLUMNS`."""
    (
        job_id,
        project,
        firmware_id,
        document,
        status,
        target_kind,
        target_group,
        max_per_minute,
        timeout,
        abort_criteria,
        force_canceled,
        reason,
        created_at,
        updated_at,
        rollout_started_at,
        completed_at,
        kind,
        description,
        target_selection,
        targets,
        options,
        comment,
    ) = row
    return JobRecord(
        job_id=job_id,
        project=project,
        firmware_id=firmware_id,
        document=json.loads(document),
        status=JobStatus(status),
        target_kind=target_kind,
        target_group=target_group,
        max_per_minute=max_per_minute,
        in_progress_timeout_minutes=timeout,
        abort_criteria=_json(abort_criteria),
        force_canceled=bool(force_canceled),
        reason=reason,
        created_at=created_at,
        updated_at=updated_at,
        rollout_started_at=rollout_started_at,
        completed_at=completed_at,
        kind=kind,
        description=description,
        target_selection=target_selection,
        targets=_json(targets),
        options=_json(options),
        comment=comment,
    )


def execution_record(row: Sequence[Any]) -> ExecutionRecord:
    """An :class:`ExecutionRecord` from a row of :data:`EXECUTION_COLUMNS`."""
    (
        job_id,
        thing_name,
        seq,
        status,
        status_details,
        version_number,
        execution_number,
        queued_at,
        started_at,
        last_updated_at,
        in_progress_deadline,
        step_deadline,
        document,
        firmware_id,
        job_status,
        job_timeout_minutes,
        retries_failed,
        retries_timed_out,
        job_options,
    ) = row
    return ExecutionRecord(
        job_id=job_id,
        thing_name=thing_name,
        seq=seq,
        status=ExecStatus(status),
        status_details=json.loads(status_details),
        version_number=int(version_number),
        execution_number=int(execution_number),
        queued_at=queued_at,
        started_at=started_at,
        last_updated_at=last_updated_at,
        in_progress_deadline=in_progress_deadline,
        step_deadline=step_deadline,
        document=json.loads(document),
        firmware_id=firmware_id,
        job_status=JobStatus(job_status),
        job_timeout_minutes=job_timeout_minutes,
        retries_failed=int(retries_failed),
        retries_timed_out=int(retries_timed_out),
        job_options=_json(job_options),
    )


def notify_state(row: Sequence[Any]) -> NotifyState:
    """A :class:`NotifyState` from a row of :data:`NOTIFY_COLUMNS`."""
    pending_key, head_job_id, dirty = row
    return NotifyState(pending_key, head_job_id, bool(dirty))


def _check_order() -> None:
    # The record functions unpack rows by position, in field order: the column lists must
    # follow the fields.
    for columns, record in (
        (_JOB, JobRecord),
        (_EXECUTION, ExecutionRecord),
        (_NOTIFY, NotifyState),
    ):
        names = tuple(name for name, _ in columns)
        if names != tuple(record.__dataclass_fields__):
            raise AssertionError(f"{record.__name__} columns out of order: {names}")


_check_order()
