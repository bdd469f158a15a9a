"""The ``$aws/...`` reserved-topic router (layers: docs/architecture.md).

:class:`ReservedTopicRouter` implements :class:`lantern.mqtt.hooks.PublishInterceptor`. Device
services register a :data:`Handler` per topic pattern; the router calls it with a
:class:`DeviceRequest` and sends the replies:

* ``to="requester"`` replies go to the requesting connection only (``ClientHandle.deliver``), as
  AWS IoT does for identity and jobs replies: V2 SDK clients correlate token-less requests by
  topic alone, so a reply seen by another claim connection would be taken as its own
  (docs/device-topics.md).
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
    literals: tuple[tuple[int, str], ...]  # (position, level) that must be equal
    params: tuple[tuple[int, str], ...]  # (position, name) that capture one non-empty level

    @classmethod
    def build(cls, pattern: str, levels: tuple[str, ...], handler: Handler) -> _Route:
        literals: list[tuple[int, str]] = []
        params: list[tuple[int, str]] = []
        for i, level in enumerate(levels):
            if level.startswith("{") and level.endswith("}"):
                params.append((i, level[1:-1]))
            else:
                literals.append((i, level))
        return cls(pattern, levels, handler, tuple(literals), tuple(params))

    def match(self, levels: list[str]) -> dict[str, str] | None:
        """Captured parameters if ``levels`` (already of this route's length) match."""
        for i, want in self.literals:
            if levels[i] != want:
                return None
        params: dict[str, str] = {}
        for i, name in self.params:
            got = levels[i]
            if not got:
                return None
            params[name] = got
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
        # Precompiled lookups, so a publish costs one dict lookup (plus a scan of the few
        # routes with as many levels as its topic) instead of a scan of every route:
        # - exact: topic -> handler, for literal routes that no earlier route shadows;
        # - by_depth: number of levels -> the routes of that many levels, in registration
        #   order (so the first registered match still wins);
        # - first_levels: the first level of every route (None if some route starts with a
        #   parameter), to answer "not ours" for ordinary topics without splitting them.
        self._exact: dict[str, Handler] = {}
        self._by_depth: dict[int, tuple[_Route, ...]] = {}
        self._first_levels: frozenset[str] | None = frozenset()
        self._server: _ServerPublish | None = None

    # -- registration --------------------------------------------------------------------------
    def route(self, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for topics matching ``pattern``."""
        levels = _check_pattern(pattern)
        if any(r.levels == levels for r in self._routes):
            raise GatewayError(f"route pattern {pattern!r} is already registered")
        new = _Route.build(pattern, levels, handler)
        same_depth = self._by_depth.get(len(levels), ())
        # A literal route is reached directly unless an earlier route already matches its topic
        # (first registered match wins); a later route can never take a topic from it.
        if not new.params and all(r.match(list(levels)) is None for r in same_depth):
            self._exact[pattern] = handler
        self._by_depth[len(levels)] = (*same_depth, new)
        self._routes.append(new)
        if self._first_levels is not None:
            first = levels[0]
            is_param = first.startswith("{") and first.endswith("}")
            self._first_levels = None if is_param else self._first_levels | {first}

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
        handler = self._exact.get(topic)
        if handler is not None:
            return handler, {}
        first_levels = self._first_levels
        if first_levels is not None and topic.partition("/")[0] not in first_levels:
            return None
        levels = topic.split("/")
        for route in self._by_depth.get(len(levels), ()):
            params = route.match(levels)
            if params is not None:
                return route.handler, params
        return None

    # -- PublishInterceptor --------------------------------------------------------------------
    async def intercept(self, client: ClientHandle, message: InboundPublish) -> ReasonCode | None:
        """Handle ``message`` if a route matches; keep unmatched ``$aws/`` topics reserved."""
        topic = message.topic
        found = self.resolve(topic)
        if found is None:
            if topic.startswith(RESERVED_PREFIX):
                log.debug("dropped publish to unrouted reserved topic %s", topic)
                return ReasonCode.NO_MATCHING_SUBSCRIBERS
            return None
        handler, params = found
        qos = message.qos
        client_id = client.client_id
        identity = cast(Identity, client.identity)
        request = DeviceRequest(topic, message.payload, identity, client_id, qos, params)
        try:
            result = await handler(request)
        except Exception:
            # A bug in a service must not take the connection down; the payload is not logged
            # (it may carry health data or keys).
            log.exception("handler for %s failed (client %s)", topic, client_id)
            return ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
        if result.replies:
            reply_qos = 1 if qos else 0
            for reply in result.replies:
                if reply.to == "requester":
                    client.deliver(reply.topic, reply.payload, qos=reply_qos)
                else:
                    self.publish(reply.topic, reply.payload, qos=reply_qos)
        return result.puback
