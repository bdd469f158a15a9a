"""Errors of the ingest service.

- :class:`IngestError` (a :class:`~lantern.errors.LanternError`): root.
  - :class:`PayloadRejected`: a device request is invalid; carries the field, an error code and a
    message for the ``…/rejected`` reply (statusCode 400).
  - :class:`UploadRefused`: an upload request is refused; carries the HTTP status and error code.
  - :class:`TokenError`: a FHIR read token is unknown, revoked or lacks the scope.

:class:`CommitFailed` is the store's (:mod:`lantern.store.group_commit`, a ``StoreError``):
the group commit holding an observation failed; nothing of that batch was stored.
"""

from __future__ import annotations

from lantern.errors import LanternError
from lantern.store.group_commit import CommitFailed

__all__ = ["CommitFailed", "IngestError", "PayloadRejected", "TokenError", "UploadRefused"]


class IngestError(LanternError):
    """Root of the ingest service's errors."""


class PayloadRejected(IngestError):
    """A device payload breaks the rules of docs/device-topics.md; ``field`` names what is wrong."""

    def __init__(self, *, field: str, error_code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.error_code = error_code
        self.message = message


class UploadRefused(IngestError):
    """An upload is refused with ``status`` (4xx) and a stable ``error_code``."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = self.error_code = error_code
        self.message = message


class TokenError(IngestError):
    """A FHIR read token is unknown, revoked or not allowed."""

    http_status = 401
    code = "Unauthorized"
