"""The one place a :class:`~lantern.errors.LanternError` becomes an HTTP answer.

A route lets any ``LanternError`` through; :func:`install_error_handler` answers it with the
error's ``http_status`` and ``code`` in the documented shape of the route's API family
(``docs/errors.md``):

* FHIR (``/fhir/...``): an ``OperationOutcome`` (``application/fhir+json``) whose issue code
  follows the status (``invalid``, ``login``, ``forbidden``, ``not-found``, ``conflict``, …);
* the app gateway (``/push``, ``/schedules``, ``/metrics``): ``{"error", "code"}``, plus ``field``
  when the error names one;
* the AWS IoT data plane (``/things/<thing>/shadow``, ``/api/things/shadow/...``): as AWS's
  REST-JSON services answer, ``{"message"}`` with the exception name in ``x-amzn-ErrorType``
  (what boto3 and the AWS CLI read);
* the admin API (everything else: ``/v1/...``, ``/files/...``):
  ``{"errorCode", "errorMessage"}``.

A 5xx answer says only that the server failed (with the family's internal-error code); the
cause is logged, never sent.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lantern.errors import LanternError
from lantern.ingest.fhir import operation_outcome

__all__ = ["Family", "error_response", "family_of", "install_error_handler"]

log = logging.getLogger("lantern.api")

Family = Literal["fhir", "gateway", "aws", "admin"]

_GATEWAY_PREFIXES = ("/push", "/schedules", "/metrics")
_FHIR_ISSUE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 409: "conflict"}
_INTERNAL_CODE = {
    "fhir": "exception",
    "gateway": "internal_error",
    "aws": "InternalFailureException",
    "admin": "InternalError",
}
_AWS_EXCEPTION = {
    400: "InvalidRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "ResourceNotFoundException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    429: "ThrottlingException",
}
FHIR_JSON = "application/fhir+json"


def family_of(path: str) -> Family:
    """The API family a request path belongs to."""
    if path == "/fhir" or path.startswith("/fhir/"):
        return "fhir"
    if any(path == p or path.startswith(p + "/") for p in _GATEWAY_PREFIXES):
        return "gateway"
    if path.startswith("/api/things/shadow/") or (
        path.startswith("/things/") and path.endswith("/shadow")
    ):
        return "aws"
    return "admin"


def error_response(exc: LanternError, family: Family) -> JSONResponse:
    """``exc`` as ``family`` answers errors."""
    status = exc.http_status
    internal = status >= 500
    message = "the server failed; try again later" if internal else _message(exc)
    code = _INTERNAL_CODE[family] if internal else exc.code
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if family == "fhir":
        issue = "exception" if internal else _FHIR_ISSUE.get(status, "processing")
        return JSONResponse(
            operation_outcome(issue, message),
            status_code=status,
            media_type=FHIR_JSON,
            headers=headers,
        )
    body: dict[str, Any]
    if family == "aws":
        if not internal and not code.endswith("Exception"):
            code = _AWS_EXCEPTION.get(status, "InvalidRequestException")
        aws_headers = {**(headers or {}), "x-amzn-ErrorType": code}
        return JSONResponse({"message": message}, status_code=status, headers=aws_headers)
    if family == "gateway":
        body = {"error": message, "code": code}
        field = getattr(exc, "field", None)
        if isinstance(field, str) and not internal:
            body["field"] = field
    else:
        body = {"errorCode": code, "errorMessage": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _message(exc: LanternError) -> str:
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


def install_error_handler(app: FastAPI) -> None:
    """Answer every ``LanternError`` a route raises (see the module docstring)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LanternError)
        if exc.http_status >= 500:
            log.error(
                "%s %s failed: %s: %s",
                request.method,
                request.url.path,
                type(exc).__name__,
                exc,
            )
        return error_response(exc, family_of(request.url.path))

    app.add_exception_handler(LanternError, handle)
