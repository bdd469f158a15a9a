"""Errors of the provisioning service.

:class:`ProvisioningRejected` carries what goes on a ``/rejected`` topic: ``statusCode``,
``errorCode`` and ``errorMessage`` (docs/device-topics.md). :class:`TemplateInvalid` is raised
when an operator's template body is malformed (the CLI and API report it).
"""

from __future__ import annotations

from lantern.errors import LanternError

__all__ = ["ProvisioningError", "ProvisioningRejected", "TemplateInvalid"]


class ProvisioningError(LanternError):
    """Root of the provisioning errors."""


class ProvisioningRejected(ProvisioningError):
    """A device request is refused; becomes ``{statusCode, errorCode, errorMessage}``."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message

    def payload(self) -> dict[str, object]:
        return {
            "statusCode": self.status_code,
            "errorCode": self.error_code,
            "errorMessage": self.message,
        }


class TemplateInvalid(ProvisioningError):
    """A provisioning template body or name is malformed; the message says where."""
