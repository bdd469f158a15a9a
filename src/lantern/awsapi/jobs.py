"""Jobs: CreateJob, DescribeJob, ListJobs, UpdateJob, CancelJob, DeleteJob, GetJobDocument,
DescribeJobExecution, ListJobExecutionsForJob, ListJobExecutionsForThing, CancelJobExecution,
DeleteJobExecution — Lantern's generic jobs (:mod:`lantern.jobs.generic`); firmware
deployments are jobs too and appear here.

Targets are thing and thing-group ARNs (any region and account: Lantern has one of each). Not
supported, and refused with InvalidRequestException: job templates, ``documentParameters``,
``schedulingConfig``, ``destinationPackageVersions``, namespaces. ``tags`` are accepted and
not kept. Only the latest execution of a thing is kept: an older ``executionNumber`` is
ResourceNotFoundException. A job's execution not yet queued by the rollout shows as QUEUED.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from lantern.awsapi.common import AwsDeps, invalid, not_found, page
from lantern.awsapi.service import AwsService, Call
from lantern.iam.errors import AwsError
from lantern.jobs.deployments import AbortCriterion
from lantern.jobs.errors import (
    JobsConflict,
    JobsError,
    JobsNotFound,
    JobsStateError,
    JobsVersionConflict,
)
from lantern.jobs.generic import ExponentialRate, JobService, JobSettings, JobSpec, RetryCriterion
from lantern.jobs.queries import (
    Deployment,
    ExecStatus,
    ExecutionRecord,
    JobRecord,
    JobsQueries,
    JobStatus,
)

__all__ = ["register"]

_UNSUPPORTED = (
    "jobTemplateArn",
    "documentParameters",
    "schedulingConfig",
    "destinationPackageVersions",
    "namespaceId",
)
_COUNTS = {
    "numberOfCanceledThings": (ExecStatus.CANCELED,),
    "numberOfSucceededThings": (ExecStatus.SUCCEEDED,),
    "numberOfFailedThings": (ExecStatus.FAILED,),
    "numberOfRejectedThings": (ExecStatus.REJECTED,),
    "numberOfQueuedThings": (ExecStatus.QUEUED, ExecStatus.PLANNED),
    "numberOfInProgressThings": (ExecStatus.IN_PROGRESS,),
    "numberOfRemovedThings": (ExecStatus.REMOVED,),
    "numberOfTimedOutThings": (ExecStatus.TIMED_OUT,),
}


@contextlib.contextmanager
def _as_aws(conflict: str = "InvalidRequestException") -> Iterator[None]:
    """The jobs service's errors as the ``iot`` model names them (``conflict``: the exception
    for any other conflict of this operation)."""
    try:
        yield
    except JobsStateError as exc:
        raise AwsError("InvalidStateTransitionException", str(exc), 409) from None
    except JobsVersionConflict as exc:
        raise AwsError("VersionConflictException", str(exc), 409) from None
    except JobsConflict as exc:
        status = 409 if conflict != "InvalidRequestException" else 400
        raise AwsError(conflict, str(exc), status) from None
    except JobsNotFound as exc:
        raise not_found(str(exc)) from None
    except JobsError as exc:
        raise invalid(str(exc)) from None


# -- input ----------------------------------------------------------------------------------------
def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object")
    return value


def _num(value: Any, where: str, kind: type = int) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{where} must be a number")
    if kind is int and value != int(value):
        raise invalid(f"{where} must be a whole number")
    return kind(value)


def _targets(arns: Any) -> tuple[list[str], list[str]]:
    if not isinstance(arns, list) or not arns:
        raise invalid("targets must be a list of thing or thing group ARNs")
    things: list[str] = []
    groups: list[str] = []
    for arn in arns:
        resource = str(arn).split(":", 5)[-1] if str(arn).startswith("arn:") else ""
        kind, _, name = resource.partition("/")
        if kind == "thing" and name:
            things.append(name)
        elif kind == "thinggroup" and name:
            groups.append(name)
        else:
            raise invalid(f"target {arn} is not a thing or thing group ARN")
    return things, groups


def _rollout(params: dict[str, Any]) -> tuple[int | None, ExponentialRate | None]:
    config = _obj(params.get("jobExecutionsRolloutConfig"), "jobExecutionsRolloutConfig")
    per_minute = _num(config.get("maximumPerMinute"), "maximumPerMinute")
    rate = config.get("exponentialRate")
    if rate is None:
        return per_minute, None
    rate = _obj(rate, "exponentialRate")
    criteria = _obj(rate.get("rateIncreaseCriteria"), "rateIncreaseCriteria")
    base = _num(rate.get("baseRatePerMinute"), "baseRatePerMinute")
    factor = _num(rate.get("incrementFactor"), "incrementFactor", float)
    if base is None or factor is None:
        raise invalid("exponentialRate needs baseRatePerMinute and incrementFactor")
    return per_minute, ExponentialRate(
        base,
        factor,
        notified=_num(criteria.get("numberOfNotifiedThings"), "numberOfNotifiedThings"),
        succeeded=_num(criteria.get("numberOfSucceededThings"), "numberOfSucceededThings"),
    )


def _abort(params: dict[str, Any]) -> list[AbortCriterion] | None:
    if params.get("abortConfig") is None:
        return None
    criteria = _obj(params["abortConfig"], "abortConfig").get("criteriaList")
    if not isinstance(criteria, list) or not criteria:
        raise invalid("abortConfig.criteriaList needs at least one criterion")
    out = []
    for c in criteria:
        c = _obj(c, "abortConfig criterion")
        if c.get("action") != "CANCEL":
            raise invalid("abortConfig action must be CANCEL")
        threshold = _num(c.get("thresholdPercentage"), "thresholdPercentage", float)
        executed = _num(c.get("minNumberOfExecutedThings"), "minNumberOfExecutedThings")
        if threshold is None or executed is None:
            raise invalid(
                "an abort criterion needs thresholdPercentage and minNumberOfExecutedThings"
            )
        out.append(AbortCriterion(str(c.get("failureType")), threshold, executed))
    return out


def _retry(params: dict[str, Any]) -> list[RetryCriterion] | None:
    if params.get("jobExecutionsRetryConfig") is None:
        return None
    config = _obj(params["jobExecutionsRetryConfig"], "jobExecutionsRetryConfig")
    criteria = config.get("criteriaList")
    if not isinstance(criteria, list):
        raise invalid("jobExecutionsRetryConfig.criteriaList must be a list")
    out = []
    for c in criteria:
        c = _obj(c, "retry criterion")
        retries = _num(c.get("numberOfRetries"), "numberOfRetries")
        if retries is None:
            raise invalid("a retry criterion needs numberOfRetries")
        out.append(RetryCriterion(str(c.get("failureType")), retries))
    return out


def _settings(params: dict[str, Any]) -> JobSettings:
    per_minute, exponential = _rollout(params)
    timeout = _obj(params.get("timeoutConfig"), "timeoutConfig")
    presigned = _obj(params.get("presignedUrlConfig"), "presignedUrlConfig")
    description = params.get("description")
    return JobSettings(
        description=None if description is None else str(description),
        max_per_minute=per_minute,
        exponential=exponential,
        abort=_abort(params),
        in_progress_timeout_minutes=_num(
            timeout.get("inProgressTimeoutInMinutes"), "inProgressTimeoutInMinutes"
        ),
        retry=_retry(params),
        presigned_expires_seconds=_num(presigned.get("expiresInSec"), "expiresInSec"),
    )


def _unsupported(params: dict[str, Any]) -> None:
    for name in _UNSUPPORTED:
        if params.get(name):
            raise invalid(f"{name} is not supported by Lantern")


# -- output ---------------------------------------------------------------------------------------
def _status(e: ExecutionRecord) -> str:
    return ExecStatus.QUEUED.value if e.status is ExecStatus.PLANNED else e.status.value


def _job_json(call: Call, d: Deployment) -> dict[str, Any]:
    job = d.job
    options = job.options or {}
    targets = job.targets or {}
    arns = [call.arn(f"thing/{t}") for t in targets.get("things", [])]
    arns += [call.arn(f"thinggroup/{g}") for g in targets.get("groups", [])]
    if job.target_kind == "group" and job.target_group:
        arns.append(call.arn(f"thinggroup/{job.target_group}"))
    elif job.target_kind in ("things", "all"):
        arns += [call.arn(f"thing/{e.thing_name}") for e in d.executions]
    rollout: dict[str, Any] = {}
    if job.max_per_minute is not None:
        rollout["maximumPerMinute"] = job.max_per_minute
    if "exponentialRate" in options:
        rollout["exponentialRate"] = options["exponentialRate"]
    details: dict[str, Any] = {
        name: sum(d.counts.get(s, 0) for s in statuses) for name, statuses in _COUNTS.items()
    }
    details["processingTargets"] = arns if job.status is JobStatus.IN_PROGRESS else []
    out: dict[str, Any] = {
        "jobArn": call.arn(f"job/{job.job_id}"),
        "jobId": job.job_id,
        "targetSelection": job.target_selection,
        "status": job.status.value,
        "forceCanceled": job.force_canceled if job.status is JobStatus.CANCELED else None,
        "reasonCode": job.reason if job.status is JobStatus.CANCELED else None,
        "comment": job.comment,
        "targets": arns,
        "description": job.description,
        "jobExecutionsRolloutConfig": rollout or None,
        "abortConfig": {"criteriaList": job.abort_criteria} if job.abort_criteria else None,
        "createdAt": job.created_at,
        "lastUpdatedAt": job.updated_at,
        "completedAt": job.completed_at,
        "jobProcessDetails": details,
        "isConcurrent": False,
    }
    if "presignedExpiresInSec" in options:
        out["presignedUrlConfig"] = {"expiresInSec": options["presignedExpiresInSec"]}
    if job.in_progress_timeout_minutes is not None:
        out["timeoutConfig"] = {"inProgressTimeoutInMinutes": job.in_progress_timeout_minutes}
    if options.get("retry"):
        out["jobExecutionsRetryConfig"] = {"criteriaList": options["retry"]}
    return {k: v for k, v in out.items() if v is not None}


def _summary(job: JobRecord, call: Call) -> dict[str, Any]:
    out: dict[str, Any] = {
        "jobArn": call.arn(f"job/{job.job_id}"),
        "jobId": job.job_id,
        "targetSelection": job.target_selection,
        "status": job.status.value,
        "createdAt": job.created_at,
        "lastUpdatedAt": job.updated_at,
        "completedAt": job.completed_at,
        "isConcurrent": False,
    }
    return {k: v for k, v in out.items() if v is not None}


def _execution_summary(e: ExecutionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": _status(e),
        "queuedAt": e.queued_at or e.last_updated_at,
        "startedAt": e.started_at,
        "lastUpdatedAt": e.last_updated_at,
        "executionNumber": e.execution_number,
        "retryAttempt": e.retries_failed + e.retries_timed_out,
    }
    return {k: v for k, v in out.items() if v is not None}


def _execution(call: Call, e: ExecutionRecord, force_canceled: bool, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "jobId": e.job_id,
        "status": _status(e),
        "statusDetails": {"detailsMap": dict(e.status_details)},
        "thingArn": call.arn(f"thing/{e.thing_name}"),
        "queuedAt": e.queued_at or e.last_updated_at,
        "startedAt": e.started_at,
        "lastUpdatedAt": e.last_updated_at,
        "executionNumber": e.execution_number,
        "versionNumber": e.version_number,
    }
    if e.status is ExecStatus.CANCELED:
        out["forceCanceled"] = force_canceled
    deadlines = [d for d in (e.in_progress_deadline, e.step_deadline) if d is not None]
    if e.status is ExecStatus.IN_PROGRESS and deadlines:
        out["approximateSecondsBeforeTimedOut"] = max(0, int(min(deadlines) - now))
    return {k: v for k, v in out.items() if v is not None}


def _status_filter(value: Any) -> ExecStatus | None:
    if value is None:
        return None
    try:
        status = ExecStatus(str(value))
    except ValueError:
        raise invalid(f"status {value} is not a job execution status") from None
    if status is ExecStatus.PLANNED:
        raise invalid(f"status {value} is not a job execution status")
    return status


def register(iot: AwsService, deps: AwsDeps) -> None:
    queries = JobsQueries(deps.db)

    def service() -> JobService:
        if deps.jobs is None:
            raise AwsError("ServiceUnavailableException", "jobs are not running here", 503)
        return deps.jobs

    async def changed() -> None:
        if deps.jobs_changed is not None:
            await deps.jobs_changed()

    async def job_of(job_id: str, with_executions: bool = False) -> Deployment:
        with _as_aws():
            return await queries.job(job_id, with_executions)

    @iot.operation("CreateJob")
    async def create_job(call: Call) -> dict[str, Any]:
        p = call.params
        _unsupported(p)
        things, groups = _targets(p.get("targets"))
        document = p.get("document")
        spec = JobSpec(
            job_id=p["jobId"],
            things=things,
            groups=groups,
            document=None if document is None else str(document),
            document_source=p.get("documentSource"),
            target_selection=str(p.get("targetSelection") or "SNAPSHOT"),
            settings=_settings(p),
        )
        with _as_aws("ResourceAlreadyExistsException"):
            job = await service().create(spec)
        await changed()
        return {
            "jobArn": call.arn(f"job/{job.job_id}"),
            "jobId": job.job_id,
            "description": job.description,
        }

    @iot.operation("DescribeJob")
    async def describe_job(call: Call) -> dict[str, Any]:
        d = await job_of(call.params["jobId"], with_executions=True)
        return {
            "documentSource": (d.job.options or {}).get("documentSource"),
            "job": _job_json(call, d),
        }

    @iot.operation("ListJobs")
    async def list_jobs(call: Call) -> dict[str, Any]:
        p = call.params
        _unsupported(p)
        status = p.get("status")
        if status is not None and status not in JobStatus.__members__:
            raise invalid(f"status {status} is not a job status")
        jobs = await queries.list_jobs(status=None if status is None else JobStatus(status))
        if p.get("targetSelection"):
            jobs = [j for j in jobs if j.target_selection == p["targetSelection"]]
        group = p.get("thingGroupName")
        if group:
            jobs = [
                j
                for j in jobs
                if group in (j.targets or {}).get("groups", []) or j.target_group == group
            ]
        chunk, token = page(jobs, p.get("nextToken"), p.get("maxResults"))
        return {"jobs": [_summary(j, call) for j in chunk], "nextToken": token}

    @iot.operation("UpdateJob")
    async def update_job(call: Call) -> None:
        _unsupported(call.params)
        with _as_aws():
            await service().update(call.params["jobId"], _settings(call.params))

    @iot.operation("CancelJob")
    async def cancel_job(call: Call) -> dict[str, Any]:
        p = call.params
        with _as_aws():
            await service().cancel(
                p["jobId"],
                force=bool(p.get("force", False)),
                reason_code=p.get("reasonCode"),
                comment=p.get("comment"),
            )
        await changed()
        job = (await job_of(p["jobId"])).job
        return {
            "jobArn": call.arn(f"job/{job.job_id}"),
            "jobId": job.job_id,
            "description": job.description,
        }

    @iot.operation("DeleteJob")
    async def delete_job(call: Call) -> None:
        _unsupported(call.params)
        with _as_aws():
            await service().delete(call.params["jobId"], force=bool(call.params.get("force")))
        await changed()

    @iot.operation("GetJobDocument")
    async def get_job_document(call: Call) -> dict[str, Any]:
        job = (await job_of(call.params["jobId"])).job
        return {"document": json.dumps(job.document)}

    @iot.operation("DescribeJobExecution")
    async def describe_job_execution(call: Call) -> dict[str, Any]:
        p = call.params
        with _as_aws():
            e = await queries.execution(p["jobId"], p["thingName"])
        number = p.get("executionNumber")
        if number is not None and number != e.execution_number:
            raise not_found(
                f"no execution number {number} of job {p['jobId']} for thing {p['thingName']}"
            )
        job = (await job_of(p["jobId"])).job
        now = service().clock.now() if deps.jobs is not None else 0.0
        return {"execution": _execution(call, e, job.force_canceled, now)}

    @iot.operation("ListJobExecutionsForJob")
    async def list_for_job(call: Call) -> dict[str, Any]:
        p = call.params
        status = _status_filter(p.get("status"))
        with _as_aws():
            found = await queries.job_executions(p["jobId"])
        if status is not None:
            found = [e for e in found if _status(e) == status.value]
        chunk, token = page(found, p.get("nextToken"), p.get("maxResults"))
        summaries = [
            {
                "thingArn": call.arn(f"thing/{e.thing_name}"),
                "jobExecutionSummary": _execution_summary(e),
            }
            for e in chunk
        ]
        return {"executionSummaries": summaries, "nextToken": token}

    @iot.operation("ListJobExecutionsForThing")
    async def list_for_thing(call: Call) -> dict[str, Any]:
        p = call.params
        _unsupported(p)
        status = _status_filter(p.get("status"))
        found = await queries.thing_executions(p["thingName"])
        if status is not None:
            found = [e for e in found if _status(e) == status.value]
        if p.get("jobId"):
            found = [e for e in found if e.job_id == p["jobId"]]
        chunk, token = page(found, p.get("nextToken"), p.get("maxResults"))
        summaries = [
            {"jobId": e.job_id, "jobExecutionSummary": _execution_summary(e)} for e in chunk
        ]
        return {"executionSummaries": summaries, "nextToken": token}

    @iot.operation("CancelJobExecution")
    async def cancel_job_execution(call: Call) -> None:
        p = call.params
        details = _obj(p.get("statusDetails"), "statusDetails")
        if any(not isinstance(v, str) for v in details.values()):
            raise invalid("statusDetails values must be strings")
        with _as_aws():
            await service().cancel_execution(
                p["jobId"],
                p["thingName"],
                force=bool(p.get("force", False)),
                expected_version=_num(p.get("expectedVersion"), "expectedVersion"),
                status_details=details or None,
            )
        await changed()

    @iot.operation("DeleteJobExecution")
    async def delete_job_execution(call: Call) -> None:
        p = call.params
        _unsupported(p)
        try:
            number = int(p["executionNumber"])
        except ValueError:
            raise invalid("executionNumber must be a number") from None
        with _as_aws():
            await service().delete_execution(
                p["jobId"], p["thingName"], number, force=bool(p.get("force", False))
            )
        await changed()
