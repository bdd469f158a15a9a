"""The Jobs device API's JSON, exactly as AWS IoT sends and accepts it (docs/device-topics.md).

Output: every timestamp an integer count of epoch seconds; ``statusDetails`` a string-to-string
map; the job document a JSON object. Input: payloads are parsed into typed requests; anything
invalid raises :class:`~lantern.jobs.errors.Rejected` with the AWS code and a message naming the
field. Unknown fields are ignored, as AWS does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lantern import jsonlimits
from lantern.jobs.errors import Rejected
from lantern.jsonlimits import JSONTooDeep
from lantern.store.jobs import ExecStatus, ExecutionRecord

INVALID_TOPIC = "InvalidTopic"
INVALID_JSON = "InvalidJson"
INVALID_REQUEST = "InvalidRequest"
INVALID_STATE_TRANSITION = "InvalidStateTransition"
RESOURCE_NOT_FOUND = "ResourceNotFound"
VERSION_MISMATCH = "VersionMismatch"
INTERNAL_ERROR = "InternalError"
REQUEST_THROTTLED = "RequestThrottled"
TERMINAL_STATE_REACHED = "TerminalStateReached"

JOB_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DETAIL_KEY = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_DETAILS = 10
MAX_CLIENT_TOKEN = 64
MAX_STEP_TIMEOUT = 10080
DEVICE_SETTABLE = frozenset(
    {ExecStatus.IN_PROGRESS, ExecStatus.SUCCEEDED, ExecStatus.FAILED, ExecStatus.REJECTED}
)


# -- output ---------------------------------------------------------------------------------------
def seconds(value: float) -> int:
    return int(value)


def execution_state(e: ExecutionRecord) -> dict[str, Any]:
    """JobExecutionState: ``status``, ``statusDetails``, ``versionNumber``."""
    return {
        "status": e.status.value,
        "statusDetails": dict(e.status_details),
        "versionNumber": e.version_number,
    }


def execution_summary(e: ExecutionRecord) -> dict[str, Any]:
    """JobExecutionSummary (no status: the list it sits in says it)."""
    out: dict[str, Any] = {
        "jobId": e.job_id,
        "queuedAt": seconds(e.queued_at or e.last_updated_at),
        "lastUpdatedAt": seconds(e.last_updated_at),
        "versionNumber": e.version_number,
        "executionNumber": e.execution_number,
    }
    if e.started_at is not None:
        out["startedAt"] = seconds(e.started_at)
    return out


def execution(e: ExecutionRecord, document: dict[str, Any] | None) -> dict[str, Any]:
    """JobExecution; ``jobDocument`` only when ``document`` is given."""
    out: dict[str, Any] = {
        "jobId": e.job_id,
        "thingName": e.thing_name,
        "status": e.status.value,
        "statusDetails": dict(e.status_details),
        "queuedAt": seconds(e.queued_at or e.last_updated_at),
        "lastUpdatedAt": seconds(e.last_updated_at),
        "versionNumber": e.version_number,
        "executionNumber": e.execution_number,
    }
    if e.started_at is not None:
        out["startedAt"] = seconds(e.started_at)
    if document is not None:
        out["jobDocument"] = document
    return out


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


# -- input ----------------------------------------------------------------------------------------
def parse_body(payload: bytes) -> dict[str, Any]:
    """The request object; an empty payload counts as ``{}``."""
    if not payload.strip():
        return {}
    try:
        body = jsonlimits.loads(payload.decode("utf-8"))
    except JSONTooDeep as exc:
        raise Rejected(INVALID_JSON, f"the payload is {exc}") from None
    except ValueError:  # UnicodeDecodeError is one
        raise Rejected(INVALID_JSON, "the payload is not valid UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise Rejected(INVALID_REQUEST, "the payload must be a JSON object")
    return body


def client_token(body: dict[str, Any]) -> str | None:
    """The ``clientToken`` to echo, or None; raises for a token that is not a short string."""
    token = body.get("clientToken")
    if token is None:
        return None
    if not isinstance(token, str):
        raise Rejected(INVALID_REQUEST, "clientToken must be a string")
    if not 1 <= len(token) <= MAX_CLIENT_TOKEN:
        raise Rejected(INVALID_REQUEST, f"clientToken must be 1-{MAX_CLIENT_TOKEN} characters")
    return token


def _int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(INVALID_REQUEST, f"{name} must be an integer")
    return value


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Rejected(INVALID_REQUEST, f"{name} must be true or false")
    return value


def status_details(body: dict[str, Any]) -> dict[str, str] | None:
    """Validated ``statusDetails`` (None when omitted: stored details stay unchanged).

    AWS models the map as string to string. Numbers and booleans are accepted and stored as
    their JSON text, because the seed's device samples send ``percentProgress`` as a number.
    """
    value = body.get("statusDetails")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Rejected(INVALID_REQUEST, "statusDetails must be an object of name/value pairs")
    if len(value) > MAX_DETAILS:
        raise Rejected(INVALID_REQUEST, f"statusDetails has more than {MAX_DETAILS} entries")
    out: dict[str, str] = {}
    for key, raw in value.items():
        if not _DETAIL_KEY.match(key):
            raise Rejected(
                INVALID_REQUEST,
                f"statusDetails key {key[:40]!r} must be 1-128 characters of [a-zA-Z0-9:_-]",
            )
        if isinstance(raw, str):
            text = raw
        elif isinstance(raw, bool | int | float):
            text = json.dumps(raw)
        else:
            raise Rejected(INVALID_REQUEST, f"statusDetails.{key} must be a string")
        if not 1 <= len(text) <= 1024:
            raise Rejected(INVALID_REQUEST, f"statusDetails.{key} must be 1-1024 characters")
        if _CONTROL.search(text):
            raise Rejected(INVALID_REQUEST, f"statusDetails.{key} contains control characters")
        out[key] = text
    return out


def step_timeout(body: dict[str, Any], allow_clear: bool) -> int | None:
    """``stepTimeoutInMinutes`` (1-10080; ``-1`` clears the step timer on Update)."""
    value = _int(body, "stepTimeoutInMinutes")
    if value is None:
        return None
    if value == -1 and allow_clear:
        return -1
    if not 1 <= value <= MAX_STEP_TIMEOUT:
        raise Rejected(
            INVALID_REQUEST, f"stepTimeoutInMinutes must be between 1 and {MAX_STEP_TIMEOUT}"
        )
    return value


@dataclass(frozen=True, slots=True)
class StartNextRequest:
    status_details: dict[str, str] | None
    step_timeout: int | None


@dataclass(frozen=True, slots=True)
class DescribeRequest:
    execution_number: int | None
    include_job_document: bool


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    status: ExecStatus
    status_details: dict[str, str] | None
    expected_version: int | None
    execution_number: int | None
    include_job_execution_state: bool
    include_job_document: bool
    step_timeout: int | None


def start_next_request(body: dict[str, Any]) -> StartNextRequest:
    return StartNextRequest(status_details(body), step_timeout(body, allow_clear=False))


def describe_request(body: dict[str, Any]) -> DescribeRequest:
    return DescribeRequest(_int(body, "executionNumber"), _bool(body, "includeJobDocument", True))


def update_request(body: dict[str, Any]) -> UpdateRequest:
    raw = body.get("status")
    if raw is None:
        raise Rejected(INVALID_REQUEST, "status is required")
    if not isinstance(raw, str) or raw not in ExecStatus.__members__ or raw == "PLANNED":
        raise Rejected(INVALID_REQUEST, f"status {str(raw)[:40]!r} is not a job execution status")
    status = ExecStatus(raw)
    if status not in DEVICE_SETTABLE:
        raise Rejected(
            INVALID_REQUEST,
            f"a device may set status IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not {raw}",
        )
    return UpdateRequest(
        status=status,
        status_details=status_details(body),
        expected_version=_int(body, "expectedVersion"),
        execution_number=_int(body, "executionNumber"),
        include_job_execution_state=_bool(body, "includeJobExecutionState", False),
        include_job_document=_bool(body, "includeJobDocument", False),
        step_timeout=step_timeout(body, allow_clear=True),
    )
