"""Job executions as the device API, its update batches and the timer use them: the port
(:class:`JobsUnitOfWork`, one transaction; :class:`JobsUnits`, a way to run one) and its
implementation (:class:`JobsUnit` over a synchronous connection; :class:`JobsStore` over the
database's :class:`~lantern.store.transactions.Transactions`).

Every execution change is a compare-and-swap on ``version_number``
(:meth:`JobsUnitOfWork.replace_execution`): two changes racing on one execution cannot both win,
whatever the database. The statements a device update runs are
:class:`~lantern.store.sqlite.prepared.Prepared`: on a SQLite file they go straight to
``sqlite3``, elsewhere through SQLAlchemy, from the same Core statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Select, bindparam, case, select, type_coerce, update
from sqlalchemy.types import NullType

from lantern.store.jobs import notify_state as states
from lantern.store.jobs.records import (
    EXECUTION_COLUMNS,
    PENDING,
    ExecStatus,
    ExecutionRecord,
    NotifyState,
    execution_record,
)
from lantern.store.schema.jobs import job_executions as _e
from lantern.store.schema.jobs import jobs as _j
from lantern.store.sqlite.prepared import Prepared
from lantern.store.transactions import Transactions

__all__ = [
    "JobsStore",
    "JobsUnit",
    "JobsUnitOfWork",
    "JobsUnits",
    "executions",
    "pending_order",
]

T = TypeVar("T")


def executions() -> Select[Any]:
    """Executions joined with their job, as :data:`~.records.EXECUTION_COLUMNS`."""
    return select(*EXECUTION_COLUMNS).select_from(_e.join(_j, _j.c.job_id == _e.c.job_id))


def pending_order() -> tuple[Any, ...]:
    """IN_PROGRESS first, then oldest queued first, job id breaking ties (AWS's order)."""
    in_progress_first = case((_e.c.status == ExecStatus.IN_PROGRESS.value, 0), else_=1)
    return (in_progress_first, _e.c.queued_at, _e.c.job_id)


def _untyped(name: str) -> Any:
    # A parameter SQLAlchemy does not convert, typed by the database from its column: JSON goes
    # as its text (PostgreSQL parses it as json, SQLite stores the text), as Prepared requires.
    return type_coerce(bindparam(name), NullType())


_PENDING_STATUSES = [s.value for s in PENDING]
_GET = Prepared(
    executions().where(_e.c.job_id == bindparam("p_job"), _e.c.thing_name == bindparam("p_thing"))
)
_PENDING = Prepared(
    executions()
    .where(_e.c.thing_name == bindparam("p_thing"), _e.c.status.in_(_PENDING_STATUSES))
    .order_by(*pending_order())
)
_PENDING_MANY = (
    executions()
    .where(
        _e.c.thing_name.in_(bindparam("p_things", expanding=True)),
        _e.c.status.in_(_PENDING_STATUSES),
    )
    .order_by(_e.c.thing_name, *pending_order())
)
_REPLACE = Prepared(
    update(_e)
    .where(
        _e.c.job_id == bindparam("p_job"),
        _e.c.thing_name == bindparam("p_thing"),
        _e.c.version_number == bindparam("p_version"),
    )
    .values(
        status=bindparam("p_status"),
        status_details=_untyped("p_details"),
        version_number=bindparam("p_new_version"),
        last_updated_at=bindparam("p_updated"),
        started_at=bindparam("p_started"),
        in_progress_deadline=bindparam("p_in_progress_deadline"),
        step_deadline=bindparam("p_step_deadline"),
    )
)
_DUE = executions().where(
    _e.c.status == ExecStatus.IN_PROGRESS.value,
    (_e.c.in_progress_deadline <= bindparam("p_now")) | (_e.c.step_deadline <= bindparam("p_now")),
)


class JobsUnitOfWork(Protocol):
    """What the jobs service reads and changes of executions and notification state inside one
    transaction (see :mod:`lantern.store.jobs.notify_state` for the notification state)."""

    def get_execution(self, job_id: str, thing_name: str) -> ExecutionRecord | None: ...

    def pending_executions(self, thing_name: str) -> list[ExecutionRecord]:
        """IN_PROGRESS executions then QUEUED ones, each oldest first (AWS's pending order)."""
        ...

    def pending_for_things(self, thing_names: Sequence[str]) -> dict[str, list[ExecutionRecord]]:
        """:meth:`pending_executions` of many things (things with none are left out)."""
        ...

    def replace_execution(self, current: ExecutionRecord, new: ExecutionRecord) -> bool:
        """Store ``new`` (status, details, timestamps, deadlines; its version must be
        ``current``'s + 1) only if the stored version is still ``current``'s. False: someone
        else changed it first, nothing was written."""
        ...

    def due_timeouts(self, now: float) -> list[ExecutionRecord]:
        """IN_PROGRESS executions whose in-progress or step deadline is at or before ``now``."""
        ...

    def lock_notify_states(self, thing_names: Sequence[str]) -> dict[str, NotifyState]: ...

    def save_notify_states(self, saved: Mapping[str, tuple[str, str | None]]) -> None: ...

    def clear_dirty(self, thing_names: Sequence[str]) -> None: ...

    def mark_dirty(self, thing_names: Sequence[str]) -> None: ...

    def dirty_things(self, limit: int) -> list[str]: ...


class JobsUnits(Protocol):
    """Runs a function of a :class:`JobsUnitOfWork` in one transaction."""

    async def write(self, fn: Callable[[JobsUnitOfWork], T]) -> T:
        """``fn``'s result once its transaction committed; its exception (rolled back) else."""
        ...

    async def read(self, fn: Callable[[JobsUnitOfWork], T]) -> T:
        """``fn``'s result, on committed data (nothing it changes is kept)."""
        ...


class JobsUnit:
    """:class:`JobsUnitOfWork` in the transaction of a synchronous connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get_execution(self, job_id: str, thing_name: str) -> ExecutionRecord | None:
        row = _GET.first(self.conn, {"p_job": job_id, "p_thing": thing_name})
        return None if row is None else execution_record(row)

    def pending_executions(self, thing_name: str) -> list[ExecutionRecord]:
        return [execution_record(r) for r in _PENDING.rows(self.conn, {"p_thing": thing_name})]

    def pending_for_things(self, thing_names: Sequence[str]) -> dict[str, list[ExecutionRecord]]:
        names = sorted(set(thing_names))
        if len(names) == 1:
            found = self.pending_executions(names[0])
            return {names[0]: found} if found else {}
        out: dict[str, list[ExecutionRecord]] = {}
        for chunk in states.chunks(names):
            for row in self.conn.execute(_PENDING_MANY, {"p_things": list(chunk)}):
                record = execution_record(row)
                out.setdefault(record.thing_name, []).append(record)
        return out

    def replace_execution(self, current: ExecutionRecord, new: ExecutionRecord) -> bool:
        if new.version_number != current.version_number + 1 or (
            new.job_id,
            new.thing_name,
        ) != (current.job_id, current.thing_name):
            raise ValueError("replace_execution: new must be current's next version")
        params = {
            "p_job": current.job_id,
            "p_thing": current.thing_name,
            "p_version": current.version_number,
            "p_status": new.status.value,
            "p_details": json.dumps(new.status_details),
            "p_new_version": new.version_number,
            "p_updated": new.last_updated_at,
            "p_started": new.started_at,
            "p_in_progress_deadline": new.in_progress_deadline,
            "p_step_deadline": new.step_deadline,
        }
        return _REPLACE.run(self.conn, params) == 1

    def due_timeouts(self, now: float) -> list[ExecutionRecord]:
        return [execution_record(r) for r in self.conn.execute(_DUE, {"p_now": now})]

    def lock_notify_states(self, thing_names: Sequence[str]) -> dict[str, NotifyState]:
        return states.lock_notify_states(self.conn, thing_names)

    def save_notify_states(self, saved: Mapping[str, tuple[str, str | None]]) -> None:
        states.save_notify_states(self.conn, saved)

    def clear_dirty(self, thing_names: Sequence[str]) -> None:
        states.clear_dirty(self.conn, thing_names)

    def mark_dirty(self, thing_names: Sequence[str]) -> None:
        states.mark_dirty(self.conn, thing_names)

    def dirty_things(self, limit: int) -> list[str]:
        return states.dirty_things(self.conn, limit)


class JobsStore:
    """:class:`JobsUnits` on the database's units of work (on a SQLite file, its writer
    thread; see :mod:`lantern.store.transactions`)."""

    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    async def write(self, fn: Callable[[JobsUnitOfWork], T]) -> T:
        return await self._transactions.write(lambda conn: fn(JobsUnit(conn)))

    async def read(self, fn: Callable[[JobsUnitOfWork], T]) -> T:
        return await self._transactions.read(lambda conn: fn(JobsUnit(conn)))
