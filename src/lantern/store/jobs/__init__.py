"""Repository of jobs, job executions and per-thing notification state (tables in
:mod:`lantern.store.schema.jobs`), the same on SQLite and PostgreSQL.

* :mod:`.records`: the records and the one place rows become records;
* :mod:`.executions`: the port the device API, its update batches and the timer use
  (:class:`JobsUnitOfWork`, :class:`JobsUnits`) and its implementation (:class:`JobsStore`);
* :mod:`.notify_state`: what the last notification told each thing (:class:`NotifyState`);
* :mod:`.deployments`: the control plane's writes and reads (jobs, rollout, cancel, counts).

Each statement is defined once, as SQLAlchemy Core; the hot ones run as
:class:`~lantern.store.sqlite.prepared.Prepared` statements. Everything is a synchronous
function of a connection, run in one transaction by the database's units of work or, inside an
async transaction, by ``AsyncConnection.run_sync``.
"""

from __future__ import annotations

from lantern.store.jobs.executions import JobsStore, JobsUnit, JobsUnitOfWork, JobsUnits
from lantern.store.jobs.records import (
    NOT_FINISHED,
    PENDING,
    TERMINAL,
    ExecStatus,
    ExecutionRecord,
    JobRecord,
    JobStatus,
    NotifyState,
)

__all__ = [
    "NOT_FINISHED",
    "PENDING",
    "TERMINAL",
    "ExecStatus",
    "ExecutionRecord",
    "JobRecord",
    "JobStatus",
    "JobsStore",
    "JobsUnit",
    "JobsUnitOfWork",
    "JobsUnits",
    "NotifyState",
]
