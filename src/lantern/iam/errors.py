"""Errors of the AWS IoT compatible APIs: each carries the AWS exception name as its ``code``
and AWS's HTTP status, so botocore raises a ``ClientError`` with the same code as against AWS
(the HTTP error handler answers ``{"message"}`` with ``x-amzn-ErrorType: <code>``)."""

from __future__ import annotations

from lantern.errors import LanternError

__all__ = [
    "AccessKeyError",
    "AwsError",
    "access_denied",
    "incomplete_signature",
    "invalid_signature",
    "missing_token",
    "unrecognized_client",
]


class AwsError(LanternError):
    """A refusal as an AWS service answers it: ``code`` is the exception name."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status
        self.message = message


class AccessKeyError(LanternError):
    """An operator request on access keys cannot be done; the message says why."""

    http_status = 400
    code = "InvalidRequest"


class AccessKeyNotFound(AccessKeyError):
    http_status = 404
    code = "NotFound"


class AccessKeyConflict(AccessKeyError):
    http_status = 409
    code = "Conflict"


def missing_token() -> AwsError:
    return AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)


def incomplete_signature(detail: str) -> AwsError:
    return AwsError("IncompleteSignatureException", detail, 400)


def unrecognized_client() -> AwsError:
    return AwsError(
        "UnrecognizedClientException", "The security token included in the request is invalid.", 403
    )


def invalid_signature(detail: str | None = None) -> AwsError:
    return AwsError(
        "InvalidSignatureException",
        detail
        or "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.",
        403,
    )


def access_denied(key_id: str, action: str, resource: str) -> AwsError:
    return AwsError(
        "AccessDeniedException",
        f"User: {key_id} is not authorized to perform: {action} on resource: {resource}",
        403,
    )
