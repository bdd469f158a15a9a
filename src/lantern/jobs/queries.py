"""The read side of the jobs service, shared by the HTTP API and the command line: firmware,
deployments (with their execution counts) and thing groups.

Reads run on a connection of the async engine, off the writer that commits device updates (a
list of 10,000 executions does not hold device updates up), each a few queries whatever the
number of deployments listed. The records are the store's, re-exported here so callers need not
import the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection

from lantern.jobs.errors import JobsNotFound
from lantern.store import Database
from lantern.store import firmware as catalog
from lantern.store.firmware import FirmwareRecord, GroupRecord
from lantern.store.jobs import ExecStatus, ExecutionRecord, JobRecord, JobStatus, control
from lantern.store.jobs import deployments as repo

__all__ = [
    "Deployment",
    "ExecStatus",
    "ExecutionRecord",
    "FirmwareRecord",
    "GroupRecord",
    "JobRecord",
    "JobStatus",
    "JobsQueries",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deployment:
    job: JobRecord
    counts: dict[ExecStatus, int]
    executions: list[ExecutionRecord] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class JobsQueries:
    """Read-only questions about firmware, deployments and groups."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        async with self.db.connect() as conn:
            return await conn.run_sync(fn)

    # -- firmware -------------------------------------------------------------------------------
    async def firmware(self, firmware_id: str) -> FirmwareRecord:
        record = await self._read(lambda c: catalog.get_firmware(c, firmware_id))
        if record is None:
            raise JobsNotFound(f"no firmware {firmware_id!r}")
        return record

    async def list_firmware(self, project: str | None = None) -> list[FirmwareRecord]:
        return await self._read(lambda c: catalog.list_firmware(c, project))

    async def firmware_users(self, firmware_id: str) -> list[str]:
        """Deployments still using the image (rolling out, or with executions not finished)."""
        return await self._read(lambda c: repo.firmware_users(c, firmware_id))

    # -- deployments ----------------------------------------------------------------------------
    async def deployment(self, job_id: str, with_executions: bool = True) -> Deployment:
        def read(conn: Connection) -> Deployment:
            job = repo.get_job(conn, job_id)
            if job is None:
                raise JobsNotFound(f"no deployment {job_id!r}")
            counts = repo.execution_counts(conn, [job_id])[job_id]
            executions = repo.list_executions(conn, job_id) if with_executions else []
            return Deployment(job, counts, executions)

        return await self._read(read)

    async def list_deployments(self, project: str | None = None) -> list[Deployment]:
        """Deployments newest first, with their execution counts (no executions)."""

        def read(conn: Connection) -> list[Deployment]:
            jobs = repo.list_jobs(conn, project, kind="firmware")
            counts = repo.execution_counts(conn, [j.job_id for j in jobs])
            return [Deployment(j, counts[j.job_id]) for j in jobs]

        return await self._read(read)

    # -- jobs of any kind (the AWS control plane, `lantern jobs`) ------------------------------
    async def job(self, job_id: str, with_executions: bool = False) -> Deployment:
        """A job of any kind, with its execution counts."""

        def read(conn: Connection) -> Deployment:
            job = repo.get_job(conn, job_id)
            if job is None:
                raise JobsNotFound(f"no job {job_id!r}")
            counts = repo.execution_counts(conn, [job_id])[job_id]
            executions = repo.list_executions(conn, job_id) if with_executions else []
            return Deployment(job, counts, executions)

        return await self._read(read)

    async def list_jobs(
        self, project: str | None = None, status: JobStatus | None = None
    ) -> list[JobRecord]:
        """Jobs of every kind, newest first."""
        return await self._read(lambda c: repo.list_jobs(c, project, status))

    async def job_executions(
        self, job_id: str, status: ExecStatus | None = None
    ) -> list[ExecutionRecord]:
        """The job's executions in rollout order (raises for an unknown job)."""

        def read(conn: Connection) -> list[ExecutionRecord]:
            if repo.get_job(conn, job_id) is None:
                raise JobsNotFound(f"no job {job_id!r}")
            statuses = None if status is None else [status]
            return control.executions_of_job(conn, job_id, statuses)

        return await self._read(read)

    async def thing_executions(self, thing_name: str) -> list[ExecutionRecord]:
        """Every execution of the thing, newest job first."""
        return await self._read(lambda c: control.executions_of_thing(c, thing_name))

    async def execution(self, job_id: str, thing_name: str) -> ExecutionRecord:
        def read(conn: Connection) -> ExecutionRecord:
            found = control.executions_of_job(conn, job_id, things=[thing_name])
            if not found:
                raise JobsNotFound(f"no execution of job {job_id} for thing {thing_name}")
            return found[0]

        return await self._read(read)

    # -- groups ---------------------------------------------------------------------------------
    async def group(self, name: str, project: str = "default") -> tuple[GroupRecord, list[str]]:
        """The group and its members' names."""

        def read(conn: Connection) -> tuple[GroupRecord, list[str]]:
            group = catalog.get_group(conn, project, name)
            if group is None:
                raise JobsNotFound(f"no thing group {name!r} in project {project}")
            return group, catalog.group_members(conn, project, name)

        return await self._read(read)

    async def list_groups(self, project: str = "default") -> list[GroupRecord]:
        return await self._read(lambda c: catalog.list_groups(c, project))
