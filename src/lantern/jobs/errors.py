"""Errors of the jobs service.

* :class:`JobsError` (a :class:`~lantern.errors.LanternError`): control-plane misuse (unknown
  firmware, bad deployment target, deleting firmware in use); the message says how to fix it.
  :class:`JobsNotFound` and :class:`JobsConflict` refine it for HTTP status mapping;
  :class:`JobsStateError` and :class:`JobsVersionConflict` refine the conflict.
* :class:`Rejected`: a device request the Jobs API rejects; carries the AWS error ``code`` and,
  for InvalidStateTransition and VersionMismatch, the ``executionState`` AWS includes.
"""

from __future__ import annotations

from typing import Any

from lantern.errors import LanternError


class JobsError(LanternError):
    """The control plane was asked something impossible."""

    http_status = 400
    code = "InvalidRequest"


class JobsNotFound(JobsError):
    """The named firmware, deployment or group does not exist."""

    http_status = 404
    code = "NotFound"


class JobsConflict(JobsError):
    """The request conflicts with current state (e.g. firmware used by a deployment)."""

    http_status = 409
    code = "Conflict"


class JobsStateError(JobsConflict):
    """The job or execution is in a state that does not allow the change (AWS
    InvalidStateTransitionException); HTTP 409 ``Conflict`` elsewhere."""


class JobsVersionConflict(JobsConflict):
    """``expectedVersion`` is not the execution's version (AWS VersionConflictException); HTTP
    409 ``Conflict`` elsewhere."""


class Rejected(LanternError):
    """A Jobs API request rejected with ``code`` (docs/device-topics.md)."""

    def __init__(
        self, code: str, message: str, execution_state: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.execution_state = execution_state
