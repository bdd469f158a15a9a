"""Generic jobs: any JSON document (AWS's 32 KB limit) sent to things and thing groups, on the
engine firmware deployments use (the same tables, rollout, timer, device API).

:class:`JobSpec` is a job as AWS CreateJob describes one (targets already resolved from ARNs to
thing and group names); :func:`validate` checks it as AWS does, naming the first bad field.
:class:`JobService` creates, updates, cancels and deletes jobs and cancels or deletes single
executions, each in one audited transaction; a change to executions marks their things for the
timer to notify. Retries, continuous target groups and the exponential rollout rate are the
timer's (:mod:`lantern.jobs.timer`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from lantern.audit import audited
from lantern.jobs.clock import Clock
from lantern.jobs.deployments import (
    FAILURE_TYPES,
    MAX_PER_MINUTE,
    AbortCriterion,
    cancel_job,
    planned,
)
from lantern.jobs.errors import (
    JobsConflict,
    JobsError,
    JobsNotFound,
    JobsStateError,
    JobsVersionConflict,
)
from lantern.jobs.events import JobEvents
from lantern.jobs.files import MAX_PLACEHOLDERS, FileUrls, placeholder_urls
from lantern.jobs.wire import JOB_ID, MAX_STEP_TIMEOUT
from lantern.store import Database
from lantern.store import firmware as catalog_store
from lantern.store.jobs import TERMINAL, ExecStatus, JobRecord, JobStatus
from lantern.store.jobs import control as control_store
from lantern.store.jobs import deployments as store
from lantern.store.jobs.notify_state import mark_dirty
from lantern.store.objects import ObjectStore

MAX_DOCUMENT_BYTES = 32_768
MAX_TARGETS = 100
MAX_DESCRIPTION = 2028
RETRY_TYPES = ("FAILED", "TIMED_OUT", "ALL")
MAX_RETRIES = 10
SELECTIONS = ("SNAPSHOT", "CONTINUOUS")
GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class ExponentialRate:
    """``exponentialRate``: start at ``base_per_minute`` and multiply by ``increment_factor``
    each time another ``notified`` things were notified (or ``succeeded`` succeeded)."""

    base_per_minute: int
    increment_factor: float
    notified: int | None = None
    succeeded: int | None = None

    def as_json(self) -> dict[str, Any]:
        criteria = (
            {"numberOfNotifiedThings": self.notified}
            if self.notified is not None
            else {"numberOfSucceededThings": self.succeeded}
        )
        return {
            "baseRatePerMinute": self.base_per_minute,
            "incrementFactor": self.increment_factor,
            "rateIncreaseCriteria": criteria,
        }


@dataclass(frozen=True, slots=True)
class RetryCriterion:
    failure_type: str  # FAILED | TIMED_OUT | ALL
    retries: int

    def as_json(self) -> dict[str, Any]:
        return {"failureType": self.failure_type, "numberOfRetries": self.retries}


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What UpdateJob may change (None / empty: unchanged there, absent at creation)."""

    description: str | None = None
    max_per_minute: int | None = None
    exponential: ExponentialRate | None = None
    abort: Sequence[AbortCriterion] | None = None
    in_progress_timeout_minutes: int | None = None
    retry: Sequence[RetryCriterion] | None = None
    presigned_expires_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    job_id: str
    things: Sequence[str] = ()
    groups: Sequence[str] = ()
    document: str | None = None  # JSON text, as CreateJob sends it
    document_source: str | None = None  # a file URL (lantern.jobs.files)
    target_selection: str = "SNAPSHOT"
    settings: JobSettings = field(default_factory=JobSettings)
    project: str = "default"


def validate_settings(s: JobSettings) -> None:
    """Raise :class:`JobsError` naming the first invalid setting."""
    if s.description is not None and len(s.description) > MAX_DESCRIPTION:
        raise JobsError(f"description must be at most {MAX_DESCRIPTION} characters")
    if s.max_per_minute is not None and not 1 <= s.max_per_minute <= MAX_PER_MINUTE:
        raise JobsError(f"maximumPerMinute must be between 1 and {MAX_PER_MINUTE}")
    if s.exponential is not None:
        _check_exponential(s.exponential)
        if s.max_per_minute is not None:
            raise JobsError("give maximumPerMinute or exponentialRate, not both")
    timeout = s.in_progress_timeout_minutes
    if timeout is not None and not 1 <= timeout <= MAX_STEP_TIMEOUT:
        raise JobsError(f"inProgressTimeoutInMinutes must be between 1 and {MAX_STEP_TIMEOUT}")
    for c in s.abort or ():
        if c.failure_type not in FAILURE_TYPES:
            raise JobsError(f"abort failureType must be one of {', '.join(FAILURE_TYPES)}")
        if not 0 < c.threshold_percentage <= 100:
            raise JobsError("abort thresholdPercentage must be above 0 and at most 100")
        if c.min_executed < 1:
            raise JobsError("abort minNumberOfExecutedThings must be at least 1")
    if s.retry is not None:
        _check_retry(s.retry)
    ttl = s.presigned_expires_seconds
    if ttl is not None and not 60 <= ttl <= 3600:
        raise JobsError("presignedUrlConfig.expiresInSec must be between 60 and 3600")


def _check_exponential(e: ExponentialRate) -> None:
    if not 1 <= e.base_per_minute <= MAX_PER_MINUTE:
        raise JobsError(f"exponentialRate.baseRatePerMinute must be 1-{MAX_PER_MINUTE}")
    if not 1.1 <= e.increment_factor <= 5:
        raise JobsError("exponentialRate.incrementFactor must be between 1.1 and 5")
    if (e.notified is None) == (e.succeeded is None):
        raise JobsError(
            "exponentialRate.rateIncreaseCriteria needs numberOfNotifiedThings or "
            "numberOfSucceededThings (one of them)"
        )
    if (e.notified or e.succeeded or 0) < 1:
        raise JobsError("exponentialRate.rateIncreaseCriteria numbers must be at least 1")


def _check_retry(criteria: Sequence[RetryCriterion]) -> None:
    if not 1 <= len(criteria) <= 2:
        raise JobsError("jobExecutionsRetryConfig.criteriaList needs 1 or 2 criteria")
    for c in criteria:
        if c.failure_type not in RETRY_TYPES:
            raise JobsError(f"retry failureType must be one of {', '.join(RETRY_TYPES)}")
        if not 0 <= c.retries <= MAX_RETRIES:
            raise JobsError(f"numberOfRetries must be between 0 and {MAX_RETRIES}")
    if sum(c.retries for c in criteria) > MAX_RETRIES:
        raise JobsError(f"a job allows at most {MAX_RETRIES} retries in total")
    if len({c.failure_type for c in criteria}) != len(criteria):
        raise JobsError("each retry failureType may appear once")


def validate(spec: JobSpec) -> None:
    """Raise :class:`JobsError` naming the first invalid field of ``spec``."""
    if not JOB_ID.match(spec.job_id):
        raise JobsError("jobId must be 1-64 characters of letters, digits, '_' and '-'")
    count = len(spec.things) + len(spec.groups)
    if not 1 <= count <= MAX_TARGETS:
        raise JobsError(f"a job needs 1-{MAX_TARGETS} targets (thing or thing group ARNs)")
    if spec.target_selection not in SELECTIONS:
        raise JobsError("targetSelection must be SNAPSHOT or CONTINUOUS")
    if (spec.document is None) == (spec.document_source is None):
        raise JobsError("give a job document or a documentSource (one of them)")
    if spec.document is not None:
        parse_document(spec.document.encode())
    validate_settings(spec.settings)


def parse_document(raw: bytes) -> dict[str, Any]:
    """A job document: a JSON object of at most 32 KB."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise JobsError(f"the job document is {len(raw)} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise JobsError("the job document is not valid JSON") from None
    if not isinstance(document, dict):
        raise JobsError("the job document must be a JSON object")
    return document


def options_json(s: JobSettings, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``options`` column: ``base`` with ``s``'s settings (those given) applied."""
    out = dict(base or {})
    if s.exponential is not None:
        out["exponentialRate"] = s.exponential.as_json()
        out.pop("maximumPerMinute", None)
    if s.retry is not None:
        out["retry"] = [c.as_json() for c in s.retry]
    if s.presigned_expires_seconds is not None:
        out["presignedExpiresInSec"] = s.presigned_expires_seconds
    return out


class JobService:
    """Creating, changing and removing generic jobs (reads: :class:`~.queries.JobsQueries`)."""

    def __init__(
        self, db: Database, clock: Clock, objects: ObjectStore, files: FileUrls | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.objects = objects
        self.files = files or FileUrls()
        #: ``$aws/events/job|jobExecution/...`` publisher; None = off (``aws.events``).
        self.events: JobEvents | None = None

    async def create(self, spec: JobSpec) -> JobRecord:
        """Create the job and one PLANNED execution per target thing (queued by the timer's
        rollout); audited as ``job.create``."""
        async with audited(self.db, "job.create", spec.job_id, project=spec.project) as act:
            validate(spec)
            source = spec.document_source
            raw = spec.document.encode() if spec.document is not None else None
            if source is not None:
                raw = await self._read_source(source, spec.project)
            assert raw is not None
            document = parse_document(raw)
            files = self._files_of(document)
            now = self.clock.now()
            async with self.db.transaction() as conn:
                job, count = await conn.run_sync(
                    lambda c: _insert_job(c, spec, document, files, now)
                )
                await act.record(conn, things=count, selection=spec.target_selection)
            return job

    def _files_of(self, document: dict[str, Any]) -> dict[str, str]:
        urls = placeholder_urls(document)
        if len(urls) > MAX_PLACEHOLDERS:
            raise JobsError(f"a job document may hold at most {MAX_PLACEHOLDERS} presigned URLs")
        return {url: self.files.firmware_id(url) for url in urls}

    async def _read_source(self, url: str, project: str) -> bytes:
        if len(url) > 1350:
            raise JobsError("documentSource must be at most 1350 characters")
        firmware_id = self.files.firmware_id(url)
        async with self.db.connect() as conn:
            record = await conn.run_sync(lambda c: catalog_store.get_firmware(c, firmware_id))
        if record is None or record.project != project:
            raise JobsNotFound(f"documentSource {url}: no such file in project {project}")
        if record.size > MAX_DOCUMENT_BYTES:
            raise JobsError(
                f"documentSource {url} is {record.size} bytes; the limit is {MAX_DOCUMENT_BYTES}"
            )
        data = bytearray()
        async for chunk in self.objects.open_range(record.object_key, 0, record.size):
            data += chunk
        return bytes(data)

    async def update(self, job_id: str, settings: JobSettings) -> None:
        """UpdateJob: change the settings given (the document and targets stay)."""
        validate_settings(settings)
        async with (
            audited(self.db, "job.update", job_id) as act,
            self.db.transaction() as conn,
        ):
            await conn.run_sync(lambda c: _update_job(c, job_id, settings, self.clock.now()))
            await act.record(conn)

    async def cancel(
        self,
        job_id: str,
        *,
        force: bool = False,
        reason_code: str | None = None,
        comment: str | None = None,
    ) -> list[str]:
        """CancelJob (see :func:`~.deployments.cancel_job`); the things canceled."""
        if comment is not None and len(comment) > MAX_DESCRIPTION:
            raise JobsError(f"comment must be at most {MAX_DESCRIPTION} characters")
        if reason_code is not None and len(reason_code) > 128:
            raise JobsError("reasonCode must be at most 128 characters")
        async with (
            audited(self.db, "job.cancel", job_id, force=force) as act,
            self.db.transaction() as conn,
        ):
            now = self.clock.now()

            def run(c: Connection) -> list[str]:
                first = _job(c, job_id).status is JobStatus.IN_PROGRESS
                things = cancel_job(c, job_id, force=force, reason=reason_code or "", now=now)
                if first:  # a second cancel (with force) keeps what the first one said
                    values: dict[str, Any] = {"comment": comment}
                    if reason_code is None:
                        values["reason"] = None
                    control_store.update_job(c, job_id, values)
                return things

            things = await conn.run_sync(run)
            await act.record(conn, canceled_executions=len(things))
        if self.events is not None:  # committed
            job, counts = await self._job_and_counts(job_id)
            for thing in things:
                self.events.execution(job_id, thing, ExecStatus.CANCELED, {}, now)
            if job is not None:
                self.events.job(job, "canceled", counts, now)
        return things

    async def _job_and_counts(self, job_id: str) -> tuple[JobRecord | None, dict[ExecStatus, int]]:
        def read(c: Connection) -> tuple[JobRecord | None, dict[ExecStatus, int]]:
            return store.get_job(c, job_id), store.execution_counts(c, [job_id])[job_id]

        return await self.db.transactions.read(read)

    async def delete(self, job_id: str, *, force: bool = False) -> None:
        """DeleteJob: a COMPLETED or CANCELED job, or any with ``force``."""
        async with (
            audited(self.db, "job.delete", job_id, force=force) as act,
            self.db.transaction() as conn,
        ):
            job = await conn.run_sync(lambda c: _job(c, job_id))
            count = await conn.run_sync(lambda c: _delete_job(c, job_id, force))
            await act.record(conn, executions=count)
        if self.events is not None:  # committed
            self.events.job(job, "deleted", None, self.clock.now(), status="DELETED")

    async def cancel_execution(
        self,
        job_id: str,
        thing: str,
        *,
        force: bool = False,
        expected_version: int | None = None,
        status_details: Mapping[str, str] | None = None,
    ) -> None:
        """CancelJobExecution: a QUEUED one, or an IN_PROGRESS one with ``force``."""
        async with (
            audited(self.db, "job.cancel_execution", job_id, thing=thing, force=force) as act,
            self.db.transaction() as conn,
        ):
            now = self.clock.now()
            details = await conn.run_sync(
                lambda c: _cancel_execution(
                    c, job_id, thing, force, expected_version, status_details, now
                )
            )
            await act.record(conn)
        if self.events is not None:  # committed
            self.events.execution(job_id, thing, ExecStatus.CANCELED, details, now)

    async def delete_execution(
        self, job_id: str, thing: str, execution_number: int, *, force: bool = False
    ) -> None:
        """DeleteJobExecution: a terminal one, or any with ``force``."""
        async with (
            audited(self.db, "job.delete_execution", job_id, thing=thing, force=force) as act,
            self.db.transaction() as conn,
        ):
            status = await conn.run_sync(
                lambda c: _delete_execution(c, job_id, thing, execution_number, force)
            )
            await act.record(conn)
        if self.events is not None:  # committed
            self.events.execution(job_id, thing, status, {}, self.clock.now(), operation="deleted")


def _insert_job(
    conn: Connection,
    spec: JobSpec,
    document: dict[str, Any],
    files: dict[str, str],
    now: float,
) -> tuple[JobRecord, int]:
    for firmware_id in sorted(set(files.values())):
        record = catalog_store.get_firmware(conn, firmware_id)
        if record is None or record.project != spec.project:
            raise JobsNotFound(
                f"no file lantern://firmware/{firmware_id} in project {spec.project}"
            )
    things = target_things(conn, spec.project, spec.things, spec.groups)
    if store.get_job(conn, spec.job_id) is not None:
        raise JobsConflict(f"job {spec.job_id} already exists")
    s = spec.settings
    options = options_json(s)
    if files:
        options["files"] = files
    if spec.document_source is not None:
        options["documentSource"] = spec.document_source
    store.insert_job(
        conn,
        {
            "job_id": spec.job_id,
            "project": spec.project,
            "firmware_id": None,
            "document": document,
            "status": JobStatus.IN_PROGRESS.value,
            "target_kind": "targets",
            "target_group": None,
            "max_per_minute": s.max_per_minute,
            "in_progress_timeout_minutes": s.in_progress_timeout_minutes,
            "abort_criteria": [c.as_json() for c in s.abort or ()] or None,
            "force_canceled": False,
            "reason": None,
            "created_at": now,
            "updated_at": now,
            "rollout_started_at": None,
            "completed_at": None,
            "kind": GENERIC,
            "description": s.description,
            "target_selection": spec.target_selection,
            "targets": {"things": list(spec.things), "groups": list(spec.groups)},
            "options": options,
            "comment": None,
        },
    )
    store.insert_executions(
        conn, [planned(spec.job_id, name, seq, now) for seq, name in enumerate(things)]
    )
    job = store.get_job(conn, spec.job_id)
    assert job is not None
    return job, len(things)


def target_things(
    conn: Connection,
    project: str,
    things: Sequence[str],
    groups: Sequence[str],
    *,
    strict: bool = True,
) -> list[str]:
    """The things named and the members of the groups named, each once, in that order.
    ``strict``: a missing thing or group is an error (else it is skipped)."""
    names = list(dict.fromkeys(things))
    found = store.existing_things(conn, project, names)
    missing = [n for n in names if n not in found]
    if missing and strict:
        raise JobsNotFound(f"no such things in project {project}: {', '.join(missing[:5])}")
    out = [n for n in names if n in found]
    for group in dict.fromkeys(groups):
        if catalog_store.get_group(conn, project, group) is None:
            if strict:
                raise JobsNotFound(f"no thing group {group!r} in project {project}")
            continue
        out.extend(catalog_store.group_members(conn, project, group))
    return list(dict.fromkeys(out))


def _job(conn: Connection, job_id: str) -> JobRecord:
    job = store.get_job(conn, job_id)
    if job is None:
        raise JobsNotFound(f"no job {job_id!r}")
    return job


def _update_job(conn: Connection, job_id: str, s: JobSettings, now: float) -> None:
    job = _job(conn, job_id)
    values: dict[str, Any] = {"updated_at": now, "options": options_json(s, job.options)}
    if s.description is not None:
        values["description"] = s.description
    if s.max_per_minute is not None:
        values["max_per_minute"] = s.max_per_minute
        values["options"].pop("exponentialRate", None)
    elif s.exponential is not None:
        values["max_per_minute"] = None
    if s.abort is not None:
        values["abort_criteria"] = [c.as_json() for c in s.abort] or None
    if s.in_progress_timeout_minutes is not None:
        # As AWS: the timeout of executions already started does not change.
        values["in_progress_timeout_minutes"] = s.in_progress_timeout_minutes
    control_store.update_job(conn, job_id, values)


def _delete_job(conn: Connection, job_id: str, force: bool) -> int:
    job = _job(conn, job_id)
    if job.status is JobStatus.IN_PROGRESS and not force:
        raise JobsStateError(f"job {job_id} is IN_PROGRESS; cancel it first or delete with force")
    things = control_store.delete_job(conn, job_id)
    mark_dirty(conn, things)
    return len(things)


def _execution(conn: Connection, job_id: str, thing: str) -> Any:
    _job(conn, job_id)
    found = control_store.executions_of_job(conn, job_id, things=[thing])
    if not found:
        raise JobsNotFound(f"no execution of job {job_id} for thing {thing}")
    return found[0]


def _cancel_execution(
    conn: Connection,
    job_id: str,
    thing: str,
    force: bool,
    expected_version: int | None,
    details: Mapping[str, str] | None,
    now: float,
) -> dict[str, str]:
    """Cancel it; its status details as stored."""
    current = _execution(conn, job_id, thing)
    if current.status in TERMINAL:
        raise JobsStateError(
            f"the execution of job {job_id} on {thing} is {current.status.value} (terminal)"
        )
    if current.status is ExecStatus.IN_PROGRESS and not force:
        raise JobsStateError(
            f"the execution of job {job_id} on {thing} is IN_PROGRESS; cancel with force"
        )
    if expected_version is not None and expected_version != current.version_number:
        raise JobsVersionConflict(
            f"expectedVersion {expected_version} is not the current version "
            f"{current.version_number}"
        )
    merged = {**current.status_details, **(details or {})} if details else None
    if not control_store.set_execution_status(conn, current, ExecStatus.CANCELED, now, merged):
        raise JobsVersionConflict("the execution changed meanwhile; try again")
    mark_dirty(conn, [thing])
    return dict(current.status_details) if merged is None else merged


def _delete_execution(
    conn: Connection, job_id: str, thing: str, execution_number: int, force: bool
) -> ExecStatus:
    """Delete it; the status it had."""
    current = _execution(conn, job_id, thing)
    if current.execution_number != execution_number:
        raise JobsNotFound(
            f"no execution number {execution_number} of job {job_id} for thing {thing}"
        )
    if current.status not in TERMINAL and not force:
        raise JobsStateError(
            f"the execution is {current.status.value}; delete with force, or cancel it first"
        )
    control_store.delete_execution(conn, job_id, thing)
    mark_dirty(conn, [thing])
    status: ExecStatus = current.status
    return status
