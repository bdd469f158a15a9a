"""Errors of the schedule service.

``ScheduleError`` (root, a :class:`LanternError`)
  ├── ``ScheduleInvalid``  a field of a request is wrong: carries the field name and a machine code
  │     └── ``ProviderNotConfigured`` a destination no provider of this gateway can send to
  ├── ``ScheduleNotFound`` no schedule with that id is visible to the caller
  ├── ``ScheduleScopeDenied`` a destination's scheme is outside the owning key's scope
  └── ``ScheduleConflict`` the request does not fit the schedule's state (resume a stopped one)
"""

from __future__ import annotations

from lantern.errors import LanternError
from lantern.settings.push import not_configured_message


class ScheduleError(LanternError):
    """Root of the schedule service's errors; ``code`` is the machine-readable reason."""

    http_status = 400
    code = "schedule_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ScheduleInvalid(ScheduleError):
    """A request field is missing or wrong; ``field`` names it."""

    def __init__(self, field: str, message: str, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code or f"invalid_{field}")
        self.field = field


class ProviderNotConfigured(ScheduleInvalid):
    """A destination's scheme has no provider configured on this gateway: every occurrence
    would fail, so the schedule is refused (400 ``provider_not_configured``)."""

    def __init__(self, scheme: str) -> None:
        super().__init__("destinations", not_configured_message(scheme), "provider_not_configured")
        self.scheme = scheme


class ScheduleNotFound(ScheduleError):
    http_status = 404
    code = "schedule_not_found"


class ScheduleScopeDenied(ScheduleError):
    http_status = 403
    code = "scope_denied"


class ScheduleConflict(ScheduleError):
    http_status = 409
    code = "schedule_conflict"
