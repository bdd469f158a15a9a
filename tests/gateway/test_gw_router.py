"""The reserved-topic router: matching, per-requester replies, reserved topics, errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lantern.gateway import DeviceRequest, HandlerResult, Reply, ReservedTopicRouter, ThingIdentity
from lantern.gateway.errors import GatewayError
from lantern.mqtt.hooks import InboundPublish
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode

IDENTITY = ThingIdentity(certificate_id="c" * 64, thing_name="dev1", project="default")


@dataclass
class FakeClient:
    client_id: str = "dev1"
    identity: object = IDENTITY
    protocol_level: int = 5
    delivered: list[tuple[str, bytes, int]] = field(default_factory=list)

    def deliver(
        self, topic: str, payload: bytes, qos: int = 0, properties: Properties = EMPTY_PROPERTIES
    ) -> None:
        self.delivered.append((topic, payload, qos))

    def close(self, reason_code: ReasonCode) -> None:
        raise AssertionError("not expected")


@dataclass
class FakeServer:
    published: list[tuple[str, bytes, int]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        assert retain is False
        self.published.append((topic, payload, qos))


def message(topic: str, payload: bytes = b"{}", qos: int = 1) -> InboundPublish:
    return InboundPublish(topic, payload, qos, False, EMPTY_PROPERTIES)


async def test_routes_with_parameters_and_replies_to_the_requester_only() -> None:
    router = ReservedTopicRouter()
    seen: list[DeviceRequest] = []

    async def handler(request: DeviceRequest) -> HandlerResult:
        seen.append(request)
        return HandlerResult(
            replies=(
                Reply(f"{request.topic}/accepted", b"ok"),
                Reply("dev1/notify", b"n", to="subscribers"),
            )
        )

    router.route("$aws/things/{thing}/jobs/{job}/update", handler)
    server = FakeServer()
    router.attach(server)
    client = FakeClient()
    code = await router.intercept(client, message("$aws/things/dev1/jobs/j-1/update", b"x"))
    assert code == ReasonCode.SUCCESS
    assert seen[0].topic_params == {"thing": "dev1", "job": "j-1"}
    assert seen[0].payload == b"x" and seen[0].identity == IDENTITY and seen[0].qos == 1
    assert client.delivered == [("$aws/things/dev1/jobs/j-1/update/accepted", b"ok", 1)]
    assert server.published == [("dev1/notify", b"n", 1)]


async def test_unmatched_reserved_topics_never_reach_subscribers_and_others_route_normally() -> (
    None
):
    router = ReservedTopicRouter()
    client = FakeClient()
    assert await router.intercept(client, message("$aws/things/dev1/shadow/get")) == (
        ReasonCode.NO_MATCHING_SUBSCRIBERS
    )
    assert await router.intercept(client, message("dev1/data")) is None
    assert client.delivered == []


async def test_pattern_levels_must_match_exactly() -> None:
    router = ReservedTopicRouter()

    async def handler(request: DeviceRequest) -> HandlerResult:
        return HandlerResult()

    router.route("$aws/certificates/create/{fmt}", handler)
    assert router.resolve("$aws/certificates/create/json") is not None
    assert router.resolve("$aws/certificates/create") is None
    assert router.resolve("$aws/certificates/create/json/accepted") is None
    assert router.resolve("$aws/certificates/create/") is None  # empty capture


async def test_a_failing_handler_gives_0x83_and_no_reply() -> None:
    router = ReservedTopicRouter()

    async def handler(request: DeviceRequest) -> HandlerResult:
        raise RuntimeError("bug")

    router.route("$aws/rules/{rule}", handler)
    client = FakeClient()
    code = await router.intercept(client, message("$aws/rules/FHIRIngest"))
    assert code == ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
    assert client.delivered == []


def test_bad_or_duplicate_patterns_are_refused() -> None:
    router = ReservedTopicRouter()

    async def handler(request: DeviceRequest) -> HandlerResult:
        return HandlerResult()

    router.route("$aws/rules/{rule}", handler)
    with pytest.raises(GatewayError, match="already registered"):
        router.route("$aws/rules/{rule}", handler)
    with pytest.raises(GatewayError, match="wildcards"):
        router.route("$aws/rules/+", handler)
    with pytest.raises(GatewayError, match="whole level"):
        router.route("$aws/rules/x{rule}", handler)
    with pytest.raises(GatewayError, match="empty level"):
        router.route("$aws//x", handler)


def test_publish_before_the_server_is_attached_is_an_error() -> None:
    with pytest.raises(GatewayError, match="not attached"):
        ReservedTopicRouter().publish("a", b"")
