"""Routes from botocore's service model: the one way an AWS operation is added to Lantern.

::

    iot = AwsService("iot")

    @iot.operation("DescribeThing")
    async def describe_thing(call: Call) -> dict[str, Any]:
        return {"thingName": call.params["thingName"], ...}

:func:`routes` makes one Starlette route per implemented operation, at the model's method and
``requestUri`` (operations of two services on one path are told apart by the request's
credential scope). A request is authenticated (SigV4, :mod:`lantern.iam.verifier`), its
key's role checked against the operation's kind (Describe*/List*/Get* read, Delete* delete,
anything else write), its input read as the model places each member (``uri``,
``querystring`` with integers and booleans converted, ``header``, the JSON body, or a raw blob
payload), the handler called, and the handler's dict answered as JSON (``None`` values left
out) with the model's status code. Any :class:`~lantern.errors.LanternError` is answered as
AWS's REST-JSON services do: ``{"message"}`` and ``x-amzn-ErrorType``; one that is not an
:class:`~lantern.iam.errors.AwsError` is named by its status (400 InvalidRequestException, 404
ResourceNotFoundException, 409 ResourceAlreadyExistsException).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.loaders import Loader  # type: ignore[import-untyped]
from botocore.model import (  # type: ignore[import-untyped]
    OperationModel,
    ServiceModel,
    Shape,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lantern.api.errors import error_response
from lantern.audit import Actor, set_actor
from lantern.errors import LanternError
from lantern.iam import sigv4
from lantern.iam.errors import AwsError, access_denied
from lantern.iam.verifier import Caller, Kind, SignatureVerifier, allowed

__all__ = ["AwsService", "Call", "Handler", "kind_of", "routes"]

log = logging.getLogger(__name__)

# Path labels whose value may hold '/' (botocore sends it as %2F, which the router decodes).
_SLASHED_LABELS = frozenset({"topic", "target"})
_FALLBACK = {
    400: "InvalidRequestException",
    404: "ResourceNotFoundException",
    409: "ResourceAlreadyExistsException",
}


@dataclass(frozen=True)
class Call:
    """One authenticated call: its input as the model names it, who made it, and where."""

    operation: str
    params: dict[str, Any]
    caller: Caller
    account: str

    @property
    def region(self) -> str:
        return self.caller.region

    def arn(self, resource: str) -> str:
        """``arn:aws:iot:<region of the request>:<account>:<resource>``."""
        return f"arn:aws:iot:{self.region}:{self.account}:{resource}"


Handler = Callable[[Call], Awaitable[dict[str, Any] | None]]


def kind_of(operation: str) -> Kind:
    if operation.startswith(("Describe", "List", "Get")):
        return "read"
    if operation.startswith("Delete"):
        return "delete"
    return "write"


@dataclass
class AwsService:
    """One botocore service model and the handlers Lantern implements for it."""

    name: str
    model: ServiceModel = field(init=False)
    handlers: dict[str, Handler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = ServiceModel(Loader().load_service_model(self.name, "service-2"), self.name)

    def operation(self, name: str) -> Callable[[Handler], Handler]:
        """Register ``handler`` as the implementation of operation ``name``."""
        self.model.operation_model(name)  # raises for a name the model does not know

        def register(handler: Handler) -> Handler:
            self.handlers[name] = handler
            return handler

        return register

    def error(self, code: str, message: str) -> AwsError:
        """The model's exception ``code`` with its HTTP status."""
        shape = self.model.shape_for(code)
        status = int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
        return AwsError(code, message, status)

    def operations(self) -> list[_Operation]:
        """The implemented operations, by name."""
        return [
            _Operation(self, self.model.operation_model(name), handler)
            for name, handler in sorted(self.handlers.items())
        ]


@dataclass(frozen=True)
class _Operation:
    service: AwsService
    model: OperationModel
    handler: Handler

    @property
    def route(self) -> tuple[str, str]:
        return self.model.http["method"], _route_path(self.model.http["requestUri"])


def routes(
    services: Sequence[AwsService], verifier: SignatureVerifier, account: Callable[[], str]
) -> list[Route]:
    """One route per method and path of the operations of ``services``. Where two services
    share one (``GET /things/{thingName}/jobs`` is ``iot`` ListJobExecutionsForThing and
    ``iot-jobs-data`` GetPendingJobExecutions), the request's credential scope picks the
    service, as AWS's separate hosts would."""
    shared: dict[tuple[str, str], list[_Operation]] = {}
    for service in services:
        for operation in service.operations():
            shared.setdefault(operation.route, []).append(operation)
    out = []
    for (method, path), operations in shared.items():
        name = "aws." + "|".join(o.model.name for o in operations)
        endpoint = _Endpoint(operations, verifier, account)
        out.append(Route(path, endpoint, methods=[method], name=name))
    return out


def _route_path(uri: str) -> str:
    path = uri.split("?", 1)[0]
    parts = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            label = segment[1:-1].rstrip("+")
            greedy = segment.endswith("+}") or label in _SLASHED_LABELS
            segment = "{" + label + (":path}" if greedy else "}")
        parts.append(segment)
    return "/".join(parts)


def _signing_name(service: str) -> str:
    return "iotdata" if service == "iot-data" else service


class _Endpoint:
    """The operations served at one method and path (usually one)."""

    def __init__(
        self,
        operations: list[_Operation],
        verifier: SignatureVerifier,
        account: Callable[[], str],
    ) -> None:
        self.operations = {o.service.model.signing_name: o for o in operations}
        self.first = operations[0]
        self.verifier = verifier
        self.account = account

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.answer(request)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        operation = self.first
        try:
            body = await request.body()
            caller = await self.verifier.authenticate(sigv4.from_asgi(request.scope, body))
            operation = self.operations.get(_signing_name(caller.service), operation)
            service, op = operation.service, operation.model
            if not allowed(caller.key.role, kind_of(op.name)):
                raise access_denied(caller.key.id, f"{service.model.signing_name}:{op.name}", "*")
            remote = request.client.host if request.client is not None else None
            set_actor(Actor(f"access-key:{caller.key.id}", remote=remote))
            params = _read_input(service, op, request, body)
            call = Call(op.name, params, caller, self.account())
            result = await operation.handler(call) or {}
            return _write_output(op, result)
        except LanternError as exc:
            if exc.http_status >= 500:
                log.error("%s failed: %s: %s", operation.model.name, type(exc).__name__, exc)
            return error_response(_aws(exc), "aws")


def _aws(exc: LanternError) -> LanternError:
    if isinstance(exc, AwsError) or exc.http_status >= 500:
        return exc
    code = _FALLBACK.get(exc.http_status, "InvalidRequestException")
    message = getattr(exc, "message", None) or str(exc)
    return AwsError(code, str(message), exc.http_status if exc.http_status in _FALLBACK else 400)


def _convert(service: AwsService, name: str, shape: Shape, values: list[str]) -> Any:
    kind = shape.type_name
    if kind == "list":
        return values
    last = values[-1]
    if kind in ("integer", "long"):
        try:
            return int(last)
        except ValueError:
            raise service.error("InvalidRequestException", f"{name} must be a number") from None
    if kind == "boolean":
        return last.lower() == "true"
    return last


def _read_input(
    service: AwsService, op: OperationModel, request: Request, body: bytes
) -> dict[str, Any]:
    shape = op.input_shape
    if shape is None:
        return {}
    query: dict[str, list[str]] = {}
    for part in request.scope.get("query_string", b"").decode("latin-1").split("&"):
        if part:
            key, _, raw = part.partition("=")
            query.setdefault(unquote(key), []).append(unquote(raw))
    payload = shape.serialization.get("payload")
    document: dict[str, Any] | None = None
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        value: Any = None
        if location == "uri":
            value = request.path_params.get(wire)
        elif location == "querystring":
            if wire in query:
                value = _convert(service, name, member, query[wire])
        elif location == "header":
            value = request.headers.get(wire)
        elif location is None and name == payload and member.type_name == "blob":
            value = body
        elif location is None:
            if document is None:
                document = _json_body(service, body)
            value = document.get(wire)
        if value is not None:
            params[name] = value
    missing = [m for m in shape.required_members if m not in params]
    if missing:
        raise service.error(
            "InvalidRequestException",
            f"1 validation error detected: Value null at '{missing[0]}' failed to satisfy "
            "constraint: Member must not be null",
        )
    return params


def _json_body(service: AwsService, body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError:
        raise service.error("InvalidRequestException", "the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise service.error("InvalidRequestException", "the body must be a JSON object")
    return document


def _write_output(op: OperationModel, result: dict[str, Any]) -> Response:
    status = int(op.http.get("responseCode", 200))
    body = {k: v for k, v in result.items() if v is not None}
    return Response(json.dumps(body), status_code=status, media_type="application/json")
