"""Deployments: one firmware job per deployment, one execution per targeted thing.

:meth:`DeploymentService.create` validates everything first and writes the job and all its
executions in one transaction, as PLANNED; the timer (:mod:`lantern.jobs.timer`) queues them at
the rollout rate and notifies devices. :meth:`DeploymentService.cancel` follows AWS CancelJob:
without ``force`` only executions not yet started (QUEUED, and PLANNED ones never queued) are
canceled and IN_PROGRESS ones keep running; with ``force`` IN_PROGRESS ones are canceled too and
the device's later updates are rejected. Changes are marked for notification; the server's timer
publishes ``notify``/``notify-next`` for them, whichever process made the change.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from lantern.audit import AuditedAction, audited
from lantern.jobs.catalog import FIRMWARE_ID_PREFIX
from lantern.jobs.clock import Clock
from lantern.jobs.documents import FIRMWARE_OPERATION
from lantern.jobs.errors import JobsConflict, JobsError, JobsNotFound
from lantern.jobs.wire import JOB_ID, MAX_STEP_TIMEOUT
from lantern.store import Database
from lantern.store import firmware as catalog_store
from lantern.store.jobs import ExecStatus, JobRecord, JobStatus
from lantern.store.jobs import deployments as store
from lantern.store.jobs.notify_state import mark_dirty

FAILURE_TYPES = ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
MAX_PER_MINUTE = 1000
_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]+")
DEPLOYMENT_ID_PREFIX = "dep-"
"""Generated deployment ids start so (``dep-<firmware version>-<8 hex digits>``): they cannot be
mistaken for firmware ids (``fw-...``)."""


@dataclass(frozen=True, slots=True)
class AbortCriterion:
    """Cancel the rollout when ``failure_type`` executions reach ``threshold_percentage`` of the
    executed ones (SUCCEEDED, FAILED, REJECTED, TIMED_OUT), once ``min_executed`` have run."""

    failure_type: str
    threshold_percentage: float
    min_executed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "failureType": self.failure_type,
            "action": "CANCEL",
            "thresholdPercentage": self.threshold_percentage,
            "minNumberOfExecutedThings": self.min_executed,
        }


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    firmware_id: str
    things: Sequence[str] = ()
    group: str | None = None
    all_things: bool = False
    project: str = "default"
    max_per_minute: int | None = None
    in_progress_timeout_minutes: int | None = None
    abort: Sequence[AbortCriterion] = ()
    deployment_id: str | None = None


def validate_spec(spec: DeploymentSpec) -> None:
    """Raise :class:`JobsError` naming the first invalid option."""
    chosen = sum([bool(spec.things), spec.group is not None, spec.all_things])
    if chosen != 1:
        raise JobsError("choose exactly one target: things by name, a group, or all things")
    if spec.max_per_minute is not None and not 1 <= spec.max_per_minute <= MAX_PER_MINUTE:
        raise JobsError(f"max per minute must be between 1 and {MAX_PER_MINUTE}")
    timeout = spec.in_progress_timeout_minutes
    if timeout is not None and not 1 <= timeout <= MAX_STEP_TIMEOUT:
        raise JobsError(f"in-progress timeout must be between 1 and {MAX_STEP_TIMEOUT} minutes")
    for c in spec.abort:
        if c.failure_type not in FAILURE_TYPES:
            raise JobsError(f"abort failure type must be one of {', '.join(FAILURE_TYPES)}")
        if not 0 < c.threshold_percentage <= 100:
            raise JobsError("abort failure percentage must be above 0 and at most 100")
        if c.min_executed < 1:
            raise JobsError("abort minimum executed things must be at least 1")
    if spec.deployment_id is not None and not JOB_ID.match(spec.deployment_id):
        raise JobsError("a deployment id is 1-64 characters of letters, digits, '_' and '-'")
    if spec.deployment_id is not None and spec.deployment_id.startswith(FIRMWARE_ID_PREFIX):
        raise JobsError(
            f"a deployment id may not start with {FIRMWARE_ID_PREFIX!r} (firmware ids do): "
            f"choose another, e.g. {DEPLOYMENT_ID_PREFIX}{spec.deployment_id[3:] or 'rollout-1'}"
        )


class DeploymentService:
    """Creating and cancelling deployments (reads: :class:`~lantern.jobs.queries.JobsQueries`)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create(self, spec: DeploymentSpec) -> JobRecord:
        """Create the job and its executions (PLANNED, queued by the timer's rollout); audited
        as ``deployment.create``."""
        async with audited(
            self.db,
            "deployment.create",
            spec.deployment_id or "",
            firmware=spec.firmware_id,
            project=spec.project,
        ) as act:
            return await self._create(spec, act)

    async def _create(self, spec: DeploymentSpec, act: AuditedAction) -> JobRecord:
        validate_spec(spec)
        now = self.clock.now()
        async with self.db.transaction() as conn:
            job, things = await conn.run_sync(lambda c: _insert_deployment(c, spec, now))
            act.target = job.job_id
            target = "all" if spec.all_things else f"group {spec.group}" if spec.group else "things"
            await act.record(conn, target=target, things=things)
        return job

    async def cancel(
        self, job_id: str, *, force: bool = False, reason: str = "canceled by an operator"
    ) -> list[str]:
        """Cancel per AWS CancelJob semantics; returns the things whose execution was canceled.
        Audited as ``deployment.cancel``."""
        async with (
            audited(self.db, "deployment.cancel", job_id, force=force) as act,
            self.db.transaction() as conn,
        ):
            now = self.clock.now()
            things = await conn.run_sync(
                lambda c: cancel_job(c, job_id, force=force, reason=reason, now=now)
            )
            await act.record(conn, canceled_executions=len(things))
            return things


def _insert_deployment(conn: Connection, spec: DeploymentSpec, now: float) -> tuple[JobRecord, int]:
    """Insert the job and its PLANNED executions; the job and how many things it targets."""
    fw = catalog_store.get_firmware(conn, spec.firmware_id)
    if fw is None or fw.project != spec.project:
        raise JobsNotFound(f"no firmware {spec.firmware_id!r} in project {spec.project}")
    targets = _targets(conn, spec)
    job_id = spec.deployment_id or _new_id(fw.version)
    if store.get_job(conn, job_id) is not None:
        raise JobsConflict(f"deployment {job_id} already exists")
    document = {
        "operation": FIRMWARE_OPERATION,
        "deploymentId": job_id,
        "firmwareId": fw.id,
        "firmwareVersion": fw.version,
        "sha256": fw.sha256,
        "size": fw.size,
    }
    store.insert_job(
        conn,
        {
            "job_id": job_id,
            "project": spec.project,
            "firmware_id": fw.id,
            "document": document,
            "status": JobStatus.IN_PROGRESS.value,
            "target_kind": "all" if spec.all_things else "group" if spec.group else "things",
            "target_group": spec.group,
            "max_per_minute": spec.max_per_minute,
            "in_progress_timeout_minutes": spec.in_progress_timeout_minutes,
            "abort_criteria": [c.as_json() for c in spec.abort] or None,
            "force_canceled": False,
            "reason": None,
            "created_at": now,
            "updated_at": now,
            "rollout_started_at": None,
            "completed_at": None,
        },
    )
    store.insert_executions(
        conn,
        [planned(job_id, name, seq, now) for seq, name in enumerate(targets)],
    )
    job = store.get_job(conn, job_id)
    assert job is not None
    return job, len(targets)


def planned(job_id: str, thing: str, seq: int, now: float) -> dict[str, Any]:
    """A new execution row, PLANNED (the rollout queues it)."""
    return {
        "job_id": job_id,
        "thing_name": thing,
        "seq": seq,
        "status": ExecStatus.PLANNED.value,
        "status_details": {},
        "version_number": 0,
        "execution_number": 1,
        "queued_at": None,
        "started_at": None,
        "last_updated_at": now,
        "in_progress_deadline": None,
        "step_deadline": None,
    }


def _targets(conn: Connection, spec: DeploymentSpec) -> list[str]:
    if spec.all_things:
        names = store.project_things(conn, spec.project)
        if not names:
            raise JobsError(f"project {spec.project} has no things to deploy to")
        return names
    if spec.group is not None:
        group = catalog_store.get_group(conn, spec.project, spec.group)
        if group is None:
            raise JobsNotFound(f"no thing group {spec.group!r} in project {spec.project}")
        names = catalog_store.group_members(conn, spec.project, spec.group)
        if not names:
            raise JobsError(f"thing group {spec.group!r} has no members")
        return names
    names = list(dict.fromkeys(spec.things))
    found = store.existing_things(conn, spec.project, names)
    missing = [n for n in names if n not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise JobsNotFound(f"no such things in project {spec.project}: {shown}")
    return names


def cancel_job(conn: Connection, job_id: str, *, force: bool, reason: str, now: float) -> list[str]:
    """Cancel inside the caller's transaction (shared by operators and abort criteria); the
    things whose execution was canceled, marked for notification."""
    job = store.get_job(conn, job_id)
    if job is None:
        raise JobsNotFound(f"no deployment {job_id!r}")
    what = "deployment" if job.kind == "firmware" else "job"
    if job.status is JobStatus.COMPLETED:
        raise JobsConflict(f"{what} {job_id} already completed; there is nothing to cancel")
    if job.status is JobStatus.CANCELED and (job.force_canceled or not force):
        raise JobsConflict(
            f"{what} {job_id} is already canceled"
            + ("" if job.force_canceled else "; use force to cancel IN_PROGRESS executions too")
        )
    store.cancel_job_row(
        conn,
        job_id,
        force=force,
        reason=reason[:256] if job.status is JobStatus.IN_PROGRESS else job.reason,
        now=now,
    )
    statuses = [ExecStatus.PLANNED, ExecStatus.QUEUED]
    if force:
        statuses.append(ExecStatus.IN_PROGRESS)
    things = store.set_status_where(conn, job_id, statuses, ExecStatus.CANCELED, now)
    mark_dirty(conn, things)
    return things


def _new_id(version: str) -> str:
    stem = _NOT_ID.sub("_", version).strip("_")[:40] or "firmware"
    return f"{DEPLOYMENT_ID_PREFIX}{stem}-{secrets.token_hex(4)}"
