"""Errors of the app gateway.

Tree::

    PushError (LanternError)
    ├── PushRequestInvalid   the caller's request is malformed (HTTP 400; names the field)
    │   └── PayloadTooLarge  the payload exceeds the provider's limit (HTTP 413)
    ├── ScopeDenied          the key's scope does not allow the scheme (HTTP 403)

Provider failures are not exceptions of the dispatcher's API: they become a
:class:`lantern.push.dispatch.DeliveryOutcome`. Inside providers they travel as the
:class:`lantern.push.providers.base.ProviderFailure` subtree.
"""

from __future__ import annotations

from lantern.errors import LanternError


class PushError(LanternError):
    """Root of the app gateway's errors."""


class PushRequestInvalid(PushError):
    """A push request is malformed. ``field`` names the offending field (dotted path)."""

    http_status = 400

    def __init__(self, field: str, message: str, code: str = "invalid_request") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code


class PayloadTooLarge(PushRequestInvalid):
    """The payload is larger than the destination accepts."""

    http_status = 413

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message, code="payload_too_large")


class ScopeDenied(PushError):
    """The API key's scope does not allow sending to this scheme; nothing was sent."""

    http_status = 403
    code = "scope_denied"

    def __init__(self, key_id: str, scheme: str, scope: str) -> None:
        super().__init__(
            f"API key {key_id} has scope {scope!r}, which may not send to {scheme!r} destinations"
        )
        self.key_id = key_id
        self.scheme = scheme
        self.scope = scope
