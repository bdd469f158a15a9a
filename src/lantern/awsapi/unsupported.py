"""The answer to a SigV4-signed AWS call of an operation Lantern does not implement.

Without it such a call meets the HTTP app's plain ``404 {"detail": "Not Found"}`` (or a 405
where an implemented operation shares the path), which botocore cannot read as an AWS error.
Instead it gets what AWS answers an operation it does not serve: 404 with
``x-amzn-ErrorType: UnknownOperationException`` and ``{"message": "<Operation> is not supported
by Lantern"}``, so boto3 and the AWS CLI raise a ``ClientError`` that says so.

:class:`UnsupportedOperations` is consulted by the HTTP app only for a request no route
answered, and answers only one signed with SigV4 (an ``Authorization: AWS4-HMAC-SHA256 …``
header or ``X-Amz-Algorithm`` in the query): Lantern's own routes (``/v1/...`` with a bearer
token, the console, the gateway) and their 404s are never affected. The signature is verified
first: a badly signed call gets the usual AWS refusal, not a list of what Lantern lacks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from botocore.loaders import Loader  # type: ignore[import-untyped]
from botocore.model import ServiceModel  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from lantern.api.errors import error_response
from lantern.errors import LanternError
from lantern.iam import sigv4
from lantern.iam.errors import AwsError
from lantern.iam.verifier import SignatureVerifier

__all__ = ["UNKNOWN_OPERATION", "UnsupportedOperations", "is_signed", "service_model"]

UNKNOWN_OPERATION = "UnknownOperationException"
_LABEL = re.compile(r"\{([^}]+)\}")


def is_signed(scope: Scope) -> bool:
    """Whether an HTTP request carries a SigV4 signature (header or presigned query)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return bool(value.startswith(b"AWS4-HMAC-SHA256"))
    return b"X-Amz-Algorithm=" in scope.get("query_string", b"")


def service_model(name: str) -> Any:
    """botocore's model of service ``name`` (for one Lantern serves no operation of)."""
    return ServiceModel(Loader().load_service_model(name, "service-2"), name)


def _uri_pattern(uri: str) -> re.Pattern[str]:
    path = uri.split("?", 1)[0]
    out, last = [], 0
    for label in _LABEL.finditer(path):
        out.append(re.escape(path[last : label.start()]))
        out.append(".+" if label.group(1).endswith("+") else "[^/]+")
        last = label.end()
    out.append(re.escape(path[last:]))
    return re.compile("".join(out) + "/?")


class _Catalogue:
    """Every operation of some botocore service models, by signing name, method and path."""

    def __init__(self, models: Sequence[Any]) -> None:
        self.operations: dict[str, list[tuple[str, re.Pattern[str], int, str]]] = {}
        for model in models:
            entries = self.operations.setdefault(model.signing_name, [])
            for name in model.operation_names:
                http = model.operation_model(name).http
                uri = http["requestUri"]
                entries.append((http["method"], _uri_pattern(uri), uri.count("{"), name))
            entries.sort(key=lambda e: e[2])  # the most literal path first

    def name(self, service: str, method: str, path: str) -> str | None:
        for verb, pattern, _, name in self.operations.get(service, ()):
            if verb == method and pattern.fullmatch(path):
                return name
        return None


class UnsupportedOperations:
    """Called with a request no route answered (404, or 405 where another method is served):
    the AWS answer for a signed call, ``None`` for anything else (see the module docstring)."""

    def __init__(self, models: Sequence[Any], verifier: SignatureVerifier) -> None:
        self.catalogue = _Catalogue(models)
        self.verifier = verifier

    async def __call__(self, request: Request) -> Response | None:
        if not is_signed(request.scope):
            return None
        try:
            body = await request.body()
            caller = await self.verifier.authenticate(sigv4.from_asgi(request.scope, body))
        except LanternError as exc:
            return error_response(exc, "aws")
        service = "iotdata" if caller.service == "iot-data" else caller.service
        name = self.catalogue.name(service, request.method, request.url.path)
        if name is None:
            what = f"{request.method} {request.url.path} is not an operation Lantern knows"
        else:
            what = f"{name} is not supported by Lantern"
        message = f"{what} (service {caller.service}; see docs/aws-control-plane.md)"
        return error_response(AwsError(UNKNOWN_OPERATION, message, 404), "aws")
