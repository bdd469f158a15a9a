"""The AWS IoT Device Shadow MQTT API, as gateway router handlers.

Request topics (``<prefix>`` is ``$aws/things/<thing>/shadow`` or
``$aws/things/<thing>/shadow/name/<shadowName>``): ``<prefix>/get``, ``/update``, ``/delete``.

* ``/get`` and ``/update`` are answered on ``<request>/accepted`` or ``/rejected`` to the
  requesting connection only (as the jobs API; V2 SDK clients correlate by ``clientToken`` and
  topic). An accepted update also broadcasts ``/update/delta`` (when the update sent
  ``desired`` and a delta remains) and ``/update/documents`` to every authorised subscriber.
* ``/delete/accepted`` is a broadcast: every subscriber of the shadow learns of the delete (the
  requester too, when subscribed, as its SDK is); ``/delete/rejected`` goes to the requester.

Who may use which thing's shadows is the gateway's policy (the device policy allows a thing its
own ``$aws/things/<thing>/*``): a publish it denies never reaches these handlers. More than
:data:`MAX_IN_FLIGHT` requests in flight on one connection are refused 429, as AWS does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from lantern.gateway.router import DeviceRequest, HandlerResult, Reply, ReservedTopicRouter
from lantern.shadows import messages
from lantern.shadows.document import (
    CLASSIC,
    check_names,
    client_token,
    parse_body,
    parse_update,
    version_of,
)
from lantern.shadows.errors import ShadowError, internal, too_many_requests
from lantern.shadows.service import ShadowService, topic_prefix

__all__ = ["MAX_IN_FLIGHT", "ShadowDeviceAPI"]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 10

Operation = Callable[[str, str, dict[str, Any], str | None], Awaitable[list[Reply]]]


class ShadowDeviceAPI:
    """Handlers for ``$aws/things/<thing>/shadow/...``; register them with :meth:`register`."""

    def __init__(self, service: ShadowService, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.service = service
        self.max_in_flight = max_in_flight
        self._in_flight: dict[str, int] = {}

    def register(self, router: ReservedTopicRouter) -> None:
        for base in ("$aws/things/{thing}/shadow", "$aws/things/{thing}/shadow/name/{shadow}"):
            router.route(f"{base}/get", self.get)
            router.route(f"{base}/update", self.update)
            router.route(f"{base}/delete", self.delete)

    # -- handlers --------------------------------------------------------------------------------
    async def get(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, "get", self._get)

    async def update(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, "update", self._update)

    async def delete(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, "delete", self._delete)

    # -- plumbing --------------------------------------------------------------------------------
    async def _serve(self, request: DeviceRequest, op: str, operation: Operation) -> HandlerResult:
        thing = request.topic_params["thing"]
        shadow = request.topic_params.get("shadow", CLASSIC)
        client = request.client_id
        token: str | None = None
        in_flight = self._in_flight.get(client, 0)
        self._in_flight[client] = in_flight + 1
        try:
            body = parse_body(request.payload)
            token = client_token(body)
            if in_flight >= self.max_in_flight:
                raise too_many_requests()
            check_names(thing, shadow)
            replies = await operation(thing, shadow, body, token)
        except ShadowError as exc:
            replies = [self._rejected(thing, shadow, op, exc, token)]
        except Exception:
            log.exception("shadow request on %s failed (client %s)", request.topic, client)
            replies = [self._rejected(thing, shadow, op, internal(), token)]
        finally:
            left = self._in_flight[client] - 1
            if left:
                self._in_flight[client] = left
            else:
                del self._in_flight[client]
        return HandlerResult(replies=tuple(replies))

    def _rejected(
        self, thing: str, shadow: str, op: str, exc: ShadowError, token: str | None
    ) -> Reply:
        payload = messages.rejected(exc, token, self.service.now())
        return Reply(f"{topic_prefix(thing, shadow)}/{op}/rejected", messages.encode(payload))

    # -- operations ------------------------------------------------------------------------------
    async def _get(
        self, thing: str, shadow: str, _body: dict[str, Any], token: str | None
    ) -> list[Reply]:
        found = await self.service.get(thing, shadow)
        payload = messages.get_accepted(found, token, self.service.now())
        return [Reply(f"{topic_prefix(thing, shadow)}/get/accepted", messages.encode(payload))]

    async def _update(
        self, thing: str, shadow: str, body: dict[str, Any], token: str | None
    ) -> list[Reply]:
        request = parse_update(body)
        updated = await self.service.update(thing, shadow, request)
        now = updated.current.timestamp
        accepted = messages.update_accepted(request, updated.current, token, now)
        prefix = topic_prefix(thing, shadow)
        replies = [Reply(f"{prefix}/update/accepted", messages.encode(accepted))]
        for topic, payload in self.service.broadcasts(thing, shadow, updated, token, now):
            replies.append(Reply(topic, payload, to="subscribers"))
        return replies

    async def _delete(
        self, thing: str, shadow: str, body: dict[str, Any], token: str | None
    ) -> list[Reply]:
        deleted = await self.service.delete(thing, shadow, version_of(body))
        broadcasts = self.service.broadcasts(thing, shadow, deleted, token, self.service.now())
        return [Reply(topic, payload, to="subscribers") for topic, payload in broadcasts]
