"""The execution and notification-state reads and writes of a device-update batch, synchronous.

For functions run by :class:`~lantern.store.batch.BatchTransactions` (one transaction per batch
of device updates). The statements are those of :mod:`lantern.store.jobs`. On SQLite's own
driver they go straight to ``sqlite3`` as prepared SQL: building, cache-keying and compiling a
SQLAlchemy statement costs several times what SQLite needs to run it, and a batch runs a few per
device update. Other databases (PostgreSQL) get the SQLAlchemy Core statements.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lantern.store.jobs import (
    PENDING,
    ExecStatus,
    ExecutionRecord,
    JobStatus,
    execution_cas,
    execution_record,
    execution_select,
    pending_order,
)
from lantern.store.schema.jobs import job_executions, job_thing_notify

__all__ = [
    "NotifyState",
    "clear_dirty",
    "get_execution",
    "lock_notify_state",
    "pending_executions",
    "save_notify_state",
    "update_execution",
]

NotifyState = tuple[str, str | None, bool]  # (pending_key, head_job_id, dirty)

_SELECT = (
    "SELECT e.job_id, e.thing_name, e.seq, e.status, e.status_details, e.version_number, "
    "e.execution_number, e.queued_at, e.started_at, e.last_updated_at, e.in_progress_deadline, "
    "e.step_deadline, j.document, j.firmware_id, j.status, j.in_progress_timeout_minutes "
    "FROM job_executions AS e JOIN jobs AS j ON j.job_id = e.job_id "
)
_GET = _SELECT + "WHERE e.job_id = ? AND e.thing_name = ?"
_PENDING = (
    _SELECT + "WHERE e.thing_name = ? AND e.status IN ('IN_PROGRESS', 'QUEUED') "
    "ORDER BY CASE WHEN e.status = 'IN_PROGRESS' THEN 0 ELSE 1 END, e.queued_at, e.job_id"
)
_NOTIFY_STATE = "SELECT pending_key, head_job_id, dirty FROM job_thing_notify WHERE thing_name = ?"
_SAVE_NOTIFY = (
    "INSERT INTO job_thing_notify (thing_name, pending_key, head_job_id, dirty) "
    "VALUES (?, ?, ?, 0) ON CONFLICT (thing_name) DO UPDATE SET "
    "pending_key = excluded.pending_key, head_job_id = excluded.head_job_id, dirty = 0"
)
_CLEAR_DIRTY = "UPDATE job_thing_notify SET dirty = 0 WHERE thing_name = ?"
_JSON_COLUMNS = frozenset({"status_details"})
_SETTABLE = frozenset(job_executions.c.keys()) - {"job_id", "thing_name", "version_number"}
_CAS: dict[tuple[str, ...], str] = {}  # SET column list -> UPDATE statement


def _sqlite(conn: Connection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` (in its transaction), or None."""
    if conn.dialect.driver != "pysqlite":
        return None
    raw = conn.connection.driver_connection
    return raw if isinstance(raw, sqlite3.Connection) else None


def _record(t: Sequence[Any]) -> ExecutionRecord:
    return ExecutionRecord(
        job_id=t[0],
        thing_name=t[1],
        seq=t[2],
        status=ExecStatus(t[3]),
        status_details=json.loads(t[4]),
        version_number=int(t[5]),
        execution_number=int(t[6]),
        queued_at=t[7],
        started_at=t[8],
        last_updated_at=t[9],
        in_progress_deadline=t[10],
        step_deadline=t[11],
        document=json.loads(t[12]),
        firmware_id=t[13],
        job_status=JobStatus(t[14]),
        job_timeout_minutes=t[15],
    )


def get_execution(conn: Connection, job_id: str, thing_name: str) -> ExecutionRecord | None:
    raw = _sqlite(conn)
    if raw is not None:
        found = raw.execute(_GET, (job_id, thing_name)).fetchone()
        return _record(found) if found else None
    query = execution_select().where(
        job_executions.c.job_id == job_id, job_executions.c.thing_name == thing_name
    )
    row = conn.execute(query).first()
    return execution_record(row) if row else None


def update_execution(conn: Connection, current: ExecutionRecord, **values: Any) -> bool:
    """Compare-and-swap on ``version_number``, as :func:`lantern.store.jobs.update_execution`."""
    raw = _sqlite(conn)
    if raw is None:
        return conn.execute(execution_cas(current, values)).rowcount == 1
    columns = tuple(sorted(values))
    sql = _CAS.get(columns)
    if sql is None:
        unknown = set(columns) - _SETTABLE
        if unknown:
            raise ValueError(f"not settable execution columns: {sorted(unknown)}")
        # Column names only, each checked against the table above; values are parameters.
        assignments = "".join(f", {c} = ?" for c in columns)
        sql = (
            f"UPDATE job_executions SET version_number = ?{assignments} "  # noqa: S608
            "WHERE job_id = ? AND thing_name = ? AND version_number = ?"
        )
        _CAS[columns] = sql
    params: list[Any] = [current.version_number + 1]
    params.extend(json.dumps(values[c]) if c in _JSON_COLUMNS else values[c] for c in columns)
    params.extend((current.job_id, current.thing_name, current.version_number))
    return raw.execute(sql, params).rowcount == 1


def pending_executions(conn: Connection, thing_name: str) -> list[ExecutionRecord]:
    """IN_PROGRESS executions then QUEUED ones, each oldest first (AWS's pending order)."""
    raw = _sqlite(conn)
    if raw is not None:
        return [_record(t) for t in raw.execute(_PENDING, (thing_name,))]
    query = (
        execution_select()
        .where(
            job_executions.c.thing_name == thing_name,
            job_executions.c.status.in_([s.value for s in PENDING]),
        )
        .order_by(*pending_order())
    )
    return [execution_record(r) for r in conn.execute(query)]


def lock_notify_state(conn: Connection, thing_name: str) -> NotifyState:
    """What the last notification told ``thing_name`` (``("", None, False)`` if never), locked:
    on SQLite by the batch's write lock (``BEGIN IMMEDIATE``), elsewhere by a row lock."""
    raw = _sqlite(conn)
    if raw is not None:
        found = raw.execute(_NOTIFY_STATE, (thing_name,)).fetchone()
        return (found[0], found[1], bool(found[2])) if found else ("", None, False)
    # The row must exist for FOR UPDATE to lock it (and on SQLite, a write first takes the lock).
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        ins(job_thing_notify)
        .values(thing_name=thing_name, pending_key="", head_job_id=None, dirty=False)
        .on_conflict_do_nothing()
    )
    row = conn.execute(
        select(
            job_thing_notify.c.pending_key,
            job_thing_notify.c.head_job_id,
            job_thing_notify.c.dirty,
        )
        .where(job_thing_notify.c.thing_name == thing_name)
        .with_for_update()
    ).one()
    return row[0], row[1], bool(row[2])


def save_notify_state(conn: Connection, thing_name: str, key: str, head: str | None) -> None:
    """Record what was just notified (and that nothing is left to evaluate)."""
    raw = _sqlite(conn)
    if raw is not None:
        raw.execute(_SAVE_NOTIFY, (thing_name, key, head))
        return
    conn.execute(
        update(job_thing_notify)
        .where(job_thing_notify.c.thing_name == thing_name)
        .values(pending_key=key, head_job_id=head, dirty=False)
    )


def clear_dirty(conn: Connection, thing_name: str) -> None:
    raw = _sqlite(conn)
    if raw is not None:
        raw.execute(_CLEAR_DIRTY, (thing_name,))
        return
    conn.execute(
        update(job_thing_notify)
        .where(job_thing_notify.c.thing_name == thing_name)
        .values(dirty=False)
    )
