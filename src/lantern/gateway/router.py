"""The ``$aws/...`` reserved-topic router (contract: gateway_api.md).

:class:`ReservedTopicRouter` implements :class:`lantern.mqtt.hooks.PublishInterceptor`. Device
services register a :data:`Handler` per topic pattern; the router calls it with a
:class:`DeviceRequest` and sends the replies:

* ``to="requester"`` replies go to the requesting connection only (``ClientHandle.deliver``), as
  AWS IoT does for identity and jobs replies: V2 SDK clients correlate token-less requests by
  topic alone, so a reply seen by another claim connection would be taken as its own
  (PROTOCOL.md §0-#2).
* ``to="subscribers"`` replies are published through the server (``Notifier.publish``).

A publish to an ``$aws/...`` topic that matches no route is reserved: it never reaches
subscribers (the PUBACK says 0x10 "no matching subscribers").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

from lantern.gateway.errors import GatewayError
from lantern.gateway.identity import Identity
from lantern.mqtt.hooks import ClientHandle, InboundPublish
from lantern.mqtt.reason_codes import ReasonCode

__all__ = [
    "RESERVED_PREFIX",
    "DeviceRequest",
    "Handler",
    "HandlerResult",
    "Notifier",
    "Reply",
    "ReservedTopicRouter",
]

log = logging.getLogger(__name__)

RESERVED_PREFIX = "$aws/"


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """One PUBLISH to a routed topic, as a service sees it."""

    topic: str  # full request topic, e.g. "$aws/things/dev1/jobs/get"
    payload: bytes
    identity: Identity
    client_id: str
    qos: int
    topic_params: Mapping[str, str] = field(default_factory=dict)  # e.g. {"thing": "dev1"}


@dataclass(frozen=True, slots=True)
class Reply:
    """A message a handler wants sent. ``to`` says to whom (see the module docstring)."""

    topic: str
    payload: bytes
    to: Literal["requester", "subscribers"] = "requester"


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """Replies to send, and the PUBACK reason (0x99 bad payload, 0x87 denied, ...)."""

    replies: tuple[Reply, ...] = ()
    puback: ReasonCode = ReasonCode.SUCCESS


Handler = Callable[[DeviceRequest], Awaitable[HandlerResult]]


class Notifier(Protocol):
    """Publishes a server-originated message to subscribers (the MQTT server does this)."""

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None: ...


class _ServerPublish(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: str
    levels: tuple[str, ...]
    handler: Handler

    def match(self, levels: list[str]) -> dict[str, str] | None:
        if len(levels) != len(self.levels):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.levels, levels, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def _check_pattern(pattern: str) -> tuple[str, ...]:
    levels = tuple(pattern.split("/"))
    for level in levels:
        if not level:
            raise GatewayError(f"route pattern {pattern!r} has an empty level")
        if "+" in level or "#" in level:
            raise GatewayError(f"route pattern {pattern!r}: use {{name}}, not MQTT wildcards")
        is_param = level.startswith("{") and level.endswith("}")
        if not is_param and ("{" in level or "}" in level):
            raise GatewayError(f"route pattern {pattern!r}: a {{name}} must be a whole level")
    return levels


class ReservedTopicRouter:
    """Routes publishes on registered topic patterns to handlers (a ``PublishInterceptor``).

    Patterns are literal levels or ``{name}`` capturing one non-empty level, e.g.
    ``"$aws/things/{thing}/jobs/{job}/update"``. The first registered match wins; registering
    the same pattern twice is an error (two services would fight over one topic).
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._server: _ServerPublish | None = None

    # -- registration --------------------------------------------------------------------------
    def route(self, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for topics matching ``pattern``."""
        levels = _check_pattern(pattern)
        if any(r.levels == levels for r in self._routes):
            raise GatewayError(f"route pattern {pattern!r} is already registered")
        self._routes.append(_Route(pattern, levels, handler))

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(r.pattern for r in self._routes)

    def attach(self, server: _ServerPublish) -> None:
        """Give the router the server that carries ``to="subscribers"`` messages."""
        self._server = server

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Publish a server-originated message to subscribers (a :class:`Notifier`)."""
        if self._server is None:
            raise GatewayError(
                f"cannot publish to {topic!r}: the MQTT server is not attached to the router yet"
            )
        self._server.publish(topic, payload, qos=qos, retain=False)

    def resolve(self, topic: str) -> tuple[Handler, dict[str, str]] | None:
        """The handler and captured parameters for ``topic``, or None."""
        levels = topic.split("/")
        for route in self._routes:
            params = route.match(levels)
            if params is not None:
                return route.handler, params
        return None

    # -- PublishInterceptor --------------------------------------------------------------------
    async def intercept(self, client: ClientHandle, message: InboundPublish) -> ReasonCode | None:
        """Handle ``message`` if a route matches; keep unmatched ``$aws/`` topics reserved."""
        found = self.resolve(message.topic)
        if found is None:
            if message.topic.startswith(RESERVED_PREFIX):
                log.debug("dropped publish to unrouted reserved topic %s", message.topic)
                return ReasonCode.NO_MATCHING_SUBSCRIBERS
            return None
        handler, params = found
        request = DeviceRequest(
            topic=message.topic,
            payload=message.payload,
            identity=cast(Identity, client.identity),
            client_id=client.client_id,
            qos=message.qos,
            topic_params=params,
        )
        try:
            result = await handler(request)
        except Exception:
            # A bug in a service must not take the connection down; the payload is not logged
            # (it may carry health data or keys).
            log.exception("handler for %s failed (client %s)", message.topic, client.client_id)
            return ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
        reply_qos = min(message.qos, 1)
        for reply in result.replies:
            if reply.to == "requester":
                client.deliver(reply.topic, reply.payload, qos=reply_qos)
            else:
                self.publish(reply.topic, reply.payload, qos=reply_qos)
        return result.puback
