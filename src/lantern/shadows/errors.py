"""Shadow errors with the Device Shadow service's HTTP codes and messages.

Over MQTT a :class:`ShadowError` becomes the ``/rejected`` payload ``{"code", "message",
"timestamp", "clientToken"}``; over HTTP the app's error handler answers it with ``http_status``
and the botocore ``iot-data`` exception name as the admin error code.
"""

from __future__ import annotations

from lantern.errors import LanternError

__all__ = [
    "BAD_REQUEST",
    "ShadowError",
    "bad_request",
    "conflict",
    "internal",
    "no_shadow",
    "thing_not_found",
    "too_large",
    "too_many_requests",
    "unsupported_encoding",
]

BAD_REQUEST = 400

# The iot-data exception each status is, for HTTP clients (botocore's error shapes).
_EXCEPTION = {
    400: "InvalidRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "ResourceNotFoundException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedDocumentEncodingException",
    429: "ThrottlingException",
    500: "InternalFailureException",
}


class ShadowError(LanternError):
    """A shadow request refused with AWS's ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = status
        self.code = _EXCEPTION.get(status, "InternalFailureException")


def bad_request(message: str) -> ShadowError:
    return ShadowError(400, message)


def conflict() -> ShadowError:
    return ShadowError(409, "Version conflict")


def no_shadow(name: str) -> ShadowError:
    return ShadowError(404, f"No shadow exists with name: '{name}'")


def thing_not_found() -> ShadowError:
    return ShadowError(404, "Thing not found")


def too_large() -> ShadowError:
    return ShadowError(413, "The payload exceeds the maximum size allowed")


def unsupported_encoding() -> ShadowError:
    return ShadowError(415, "Unsupported documented encoding; supported encoding is UTF-8")


def too_many_requests() -> ShadowError:
    return ShadowError(429, "Too Many Requests")


def internal() -> ShadowError:
    return ShadowError(500, "Internal service failure")
