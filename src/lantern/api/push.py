"""``POST /push`` (docs/push-api.md) and ``GET /metrics``.

Thin: parse and check the body, authenticate, hand over to the
:class:`~lantern.push.dispatch.PushDispatcher`, map its outcome to a status and a JSON body.
Errors are ``{"error": "<human message>", "code": "<machine code>"}`` (plus ``field`` for 400s).
The body is parsed by hand (no pydantic model) so that every wrong shape names its field in the
error format of docs/push-api.md and the hot path stays cheap.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lantern import jsonlimits
from lantern.api.bodies import read_limited
from lantern.api.openapi import PUSH_API_KEY_SCHEME
from lantern.errors import LanternError
from lantern.jsonlimits import JSONTooDeep
from lantern.push.dispatch import DeliveryOutcome, PushDispatcher
from lantern.push.errors import PushRequestInvalid, ScopeDenied
from lantern.push.keys import ApiKey, KeyService
from lantern.security import tokens_equal

_OUTCOME_CODES: dict[str, tuple[str, str]] = {
    "dead_token": ("dead_token", "the device token is no longer valid; stop sending to it"),
    "caller_error": ("provider_rejected", "the provider rejected the notification as malformed"),
    "config_error": ("provider_unavailable", "this gateway cannot reach the provider"),
    "failed": ("provider_failed", "the provider did not accept the notification after retries"),
    "rate_limited": ("rate_limited", "too many requests for this API key"),
}
#: Largest body read to find a legacy JSON ``api_key`` (before the caller is authenticated).
LEGACY_KEY_BODY_BYTES = 65536
log = logging.getLogger(__name__)


_Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""Status, JSON body and extra headers of a /push answer."""


def _error(status: int, code: str, message: str, **extra: Any) -> _Answer:
    """An error answer (docs/push-api.md); ``retry_after`` (seconds) becomes a
    ``Retry-After`` header."""
    headers = []
    retry_after = extra.pop("retry_after", None)
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    body = json.dumps({"error": message, "code": code, **extra}).encode()
    return status, body, headers


def _bearer_value(header: str | None) -> str | None:
    """The key in an ``Authorization: Bearer`` header; "" for another scheme, None if absent."""
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""
    return value.strip()


async def _authenticate(
    keys: KeyService, bearer: str | None, body: dict[str, Any] | None
) -> tuple[_Answer, ApiKey | None]:
    """(refusal, None) or (anything, key): the Bearer header wins over a JSON ``api_key``."""
    secret = bearer
    if secret is None:
        body_key = body.get("api_key") if body is not None else None
        if body_key is None:
            return _error(
                401, "missing_api_key", "send the API key as api_key or a Bearer header"
            ), None
        if not isinstance(body_key, str):
            return _error(400, "invalid_request", "api_key must be a string", field="api_key"), None
        secret = body_key
    key = await keys.authenticate(secret) if secret else None
    if key is None:
        return _error(401, "invalid_api_key", "the API key is unknown or revoked"), None
    return _NO_ANSWER, key


_NO_ANSWER: _Answer = (0, b"", [])


class ApiKeyRefused(LanternError):
    """A request to an API-key route without a usable key (or with an unreadable body)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = code
        self.message = message
        self.field = field


def api_key_dependency(keys: KeyService) -> Callable[[Request], Awaitable[ApiKey]]:
    """A FastAPI dependency authenticating a Bearer header (or a JSON ``api_key``); raises
    :class:`ApiKeyRefused` (answered in the app gateway's error shape)."""

    async def dependency(
        request: Request,
        # Declares the route's security in the OpenAPI schema (lantern.api.openapi).
        _documented: object = Security(PUSH_API_KEY_SCHEME),
    ) -> ApiKey:
        bearer = _bearer_value(request.headers.get("authorization"))
        body: dict[str, Any] | None = None
        if bearer is None and request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            raw = await read_limited(request, LEGACY_KEY_BODY_BYTES)
            if raw is None:  # read before any key check: never more than this
                message = f"request bodies are limited to {LEGACY_KEY_BODY_BYTES} bytes"
                raise ApiKeyRefused(413, "payload_too_large", message)
            try:
                parsed = jsonlimits.loads(raw)
            except JSONTooDeep as exc:
                message = f"the request body is {exc}"
                raise ApiKeyRefused(400, "invalid_json", message, "body") from None
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                body = parsed
        refused, key = await _authenticate(keys, bearer, body)
        if key is None:
            answer = json.loads(refused[1])
            raise ApiKeyRefused(refused[0], answer["code"], answer["error"], answer.get("field"))
        return key

    return dependency


def _outcome_answer(outcome: DeliveryOutcome) -> _Answer:
    if outcome.status == "delivered":
        # The id is "dlv_" + hex: no escaping needed, and no encoder on the hot path.
        # ``"logged": false``: sent, but the delivery log has no row for it
        # (docs/push-delivery-log.md).
        tail = b'"}' if outcome.logged else b'","logged":false}'
        return 200, b'{"id":"' + outcome.delivery_id.encode() + tail, []
    code, message = _OUTCOME_CODES[outcome.status]
    message = outcome.message or message
    extra: dict[str, Any] = {"reason": outcome.reason, "retry_after": outcome.retry_after}
    if not outcome.logged:
        extra["logged"] = False
    if outcome.status != "rate_limited":
        extra["id"] = outcome.delivery_id
    if outcome.token_invalid_since is not None:
        extra["invalid_since"] = outcome.token_invalid_since
    return _error(outcome.http_status, code, message, **extra)


class PushEndpoint:
    """``POST /push`` as a bare ASGI app (docs/push-api.md).

    Mounted as a plain route and served directly by :class:`~lantern.api.app.LanternApp`
    (``serve_directly``), so FastAPI's middleware, router, dependency solving and Request/Response
    objects stay off the hot path (profiled at about a third of a push's CPU). The body is
    parsed and checked by hand, every wrong shape names its field, and an unexpected error is
    answered here with a 500 (no server-error middleware runs in front of this endpoint).
    """

    serve_directly = True

    def __init__(
        self, dispatcher: PushDispatcher, keys: KeyService, *, max_request_bytes: int = 65536
    ) -> None:
        self.dispatcher = dispatcher
        self.keys = keys
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization: str | None = None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        raw = bytearray()
        too_large = length is not None and length.isdigit() and int(length) > self.max_request_bytes
        while not too_large:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the caller went away before sending the body: nobody to answer
            raw += message.get("body", b"")
            too_large = len(raw) > self.max_request_bytes
            if not message.get("more_body", False):
                break
        if too_large:
            self.dispatcher.metrics.rejected.labels("payload_too_large").inc()
            status, body, headers = _error(
                413,
                "payload_too_large",
                f"request bodies are limited to {self.max_request_bytes} bytes",
            )
        else:
            try:
                status, body, headers = await self.handle(authorization, bytes(raw))
            except Exception as exc:
                # The type and the stack, never the message: it could quote the payload.
                stack = "".join(traceback.format_tb(exc.__traceback__))
                log.error("POST /push failed: %s\n%s", type(exc).__name__, stack)
                status, body, headers = _error(
                    500, "internal_error", "the gateway failed to handle this request"
                )
        self.dispatcher.metrics.answered(status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _invalid(self, status: int, code: str, message: str, **extra: Any) -> _Answer:
        """A refusal before dispatch, counted in ``lantern_push_rejected_total`` by code."""
        self.dispatcher.metrics.rejected.labels(code).inc()
        return _error(status, code, message, **extra)

    async def handle(self, authorization: str | None, raw: bytes) -> _Answer:
        """Status, JSON body and extra headers for one request body."""
        try:
            body = jsonlimits.loads(raw)
        except JSONTooDeep as exc:
            return self._invalid(400, "invalid_json", f"the request body is {exc}", field="body")
        except ValueError:
            return self._invalid(
                400, "invalid_json", "the request body is not valid JSON", field="body"
            )
        if not isinstance(body, dict):
            return self._invalid(
                400, "invalid_request", "the body must be a JSON object", field="body"
            )
        refused, key = await _authenticate(self.keys, _bearer_value(authorization), body)
        if key is None:
            self.dispatcher.metrics.rejected.labels("unauthorized").inc()
            return refused
        device_token = body.get("device_token")
        if not isinstance(device_token, str):
            what = "is required" if device_token is None else "must be a string"
            return self._invalid(
                400, "invalid_request", f"device_token {what}", field="device_token"
            )
        payload = body.get("payload")
        if not isinstance(payload, dict):
            what = "is required" if payload is None else "must be a JSON object"
            return self._invalid(400, "invalid_request", f"payload {what}", field="payload")
        push_type = body.get("push_type")
        if push_type is not None and not isinstance(push_type, str):
            return self._invalid(
                400, "invalid_request", "push_type must be a string", field="push_type"
            )
        try:
            outcome = await self.dispatcher.dispatch(
                key, device_token, payload, push_type=push_type
            )
        except ScopeDenied as denied:
            return _error(403, "scope_denied", str(denied))  # counted by the dispatcher
        except PushRequestInvalid as invalid:
            return self._invalid(
                invalid.http_status, invalid.code, invalid.message, field=invalid.field
            )
        return _outcome_answer(outcome)


def push_router(
    dispatcher: PushDispatcher,
    keys: KeyService,
    *,
    max_request_bytes: int = 65536,
    metrics_token: str | None = None,
) -> APIRouter:
    """The app gateway's routes, bound to ``dispatcher`` and ``keys``. With ``metrics_token``,
    ``GET /metrics`` answers 401 unless the request carries ``Authorization: Bearer <token>``
    (compared in constant time)."""
    router = APIRouter(tags=["push"])
    # A plain route to an ASGI app (see PushEndpoint). The cost: /push is not in the OpenAPI
    # schema; docs/push-api.md and the README document it.
    endpoint = PushEndpoint(dispatcher, keys, max_request_bytes=max_request_bytes)
    router.routes.append(Route("/push", endpoint, methods=["POST"], name="push"))

    @router.get("/metrics", tags=["operations"])
    async def metrics(request: Request) -> Response:
        if metrics_token is not None:
            given = _bearer_value(request.headers.get("authorization"))
            if not given or not tokens_equal(given, metrics_token):
                status, body, _ = _error(
                    401, "unauthorized", "send Authorization: Bearer <http.metrics_token>"
                )
                headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
                return Response(body, status, headers, media_type="application/json")
        return Response(
            dispatcher.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return router
