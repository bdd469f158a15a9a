"""The per-publish fast paths keep the slow paths' answers: the router's precompiled lookup
still lets the first registered match win, and the authorizer's decision cache never outlives
the policies it was computed from."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lantern.gateway import DeviceRequest, HandlerResult, ThingIdentity
from lantern.gateway import authorizer as authz_module
from lantern.gateway.authorizer import GatewayAuthorizer, builtin_policy
from lantern.gateway.policy import Action, PolicySet
from lantern.gateway.router import Handler, ReservedTopicRouter
from lantern.mqtt.hooks import InboundPublish
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode

THING = ThingIdentity(certificate_id="a" * 64, thing_name="dev1", project="default")


@dataclass
class Client:
    client_id: str
    identity: object
    protocol_level: int = 5

    def deliver(
        self, topic: str, payload: bytes, qos: int = 0, properties: Properties = EMPTY_PROPERTIES
    ) -> None: ...

    def close(self, reason_code: ReasonCode) -> None: ...


def tagged(tag: str, seen: list[tuple[str, dict[str, str]]]) -> Handler:
    async def handler(request: DeviceRequest) -> HandlerResult:
        seen.append((tag, dict(request.topic_params)))
        return HandlerResult()

    return handler


def shared_policy(action: str, resource: str, effect: str = "Allow") -> PolicySet:
    doc = {"Statement": [{"Effect": effect, "Action": action, "Resource": resource}]}
    return PolicySet.from_documents([doc], {})


async def test_the_first_registered_match_wins_whichever_lookup_finds_it() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    router = ReservedTopicRouter()
    router.route("$aws/rules/{rule}", tagged("any-rule", seen))  # registered first: shadows
    router.route("$aws/rules/FHIRIngest", tagged("fhir", seen))
    router.route("$aws/things/dev1/exact", tagged("exact", seen))  # registered first: wins
    router.route("$aws/things/{thing}/exact", tagged("param", seen))
    router.route("{anything}/status", tagged("first-level-param", seen))
    client = Client("dev1", THING)

    for topic in (
        "$aws/rules/FHIRIngest",
        "$aws/things/dev1/exact",
        "$aws/things/dev2/exact",
        "plain/status",
        "$aws/status",
    ):
        msg = InboundPublish(topic, b"{}", 1, False, EMPTY_PROPERTIES)
        assert await router.intercept(client, msg) is ReasonCode.SUCCESS

    assert seen == [
        ("any-rule", {"rule": "FHIRIngest"}),
        ("exact", {}),
        ("param", {"thing": "dev2"}),
        ("first-level-param", {"anything": "plain"}),
        ("first-level-param", {"anything": "$aws"}),
    ]
    # Ordinary topics with no route are not the router's; unrouted reserved ones stay reserved.
    assert router.resolve("plain/other") is None
    other = InboundPublish("$aws/rules", b"{}", 1, False, EMPTY_PROPERTIES)
    assert await router.intercept(client, other) is ReasonCode.NO_MATCHING_SUBSCRIBERS


async def test_literal_routes_do_not_catch_longer_or_shorter_topics() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    router = ReservedTopicRouter()
    router.route("$aws/rules/FHIRIngest", tagged("fhir", seen))
    for topic in ("$aws/rules/FHIRIngest/x", "$aws/rules", "$aws/rules/fhiringest", "x/y"):
        assert router.resolve(topic) is None
    handler, params = router.resolve("$aws/rules/FHIRIngest") or (None, None)
    assert handler is not None and params == {}
    params["mutated"] = "yes"  # each call gets its own parameters
    assert router.resolve("$aws/rules/FHIRIngest") == (handler, {})


def test_new_policies_for_a_connection_apply_at_once_despite_cached_decisions() -> None:
    auth = GatewayAuthorizer()
    dev = Client("dev1", THING)
    base = builtin_policy(THING, "dev1")
    auth.remember(
        THING,
        "dev1",
        PolicySet([*base.policies, *shared_policy("iot:Publish", "topic/shared/*").policies]),
    )
    assert auth.may_publish(dev, "shared/x") and auth.may_publish(dev, "shared/x")

    # Reconnected with the extra policy detached: the cached "allowed" must not survive.
    auth.remember(THING, "dev1", builtin_policy(THING, "dev1"))
    assert not auth.may_publish(dev, "shared/x")
    # Reconnected with an explicit Deny on a topic the built-in policy allows.
    deny = shared_policy("iot:Publish", "topic/dev1/secret", effect="Deny")
    auth.remember(THING, "dev1", PolicySet([*base.policies, *deny.policies]))
    assert not auth.may_publish(dev, "dev1/secret") and auth.may_publish(dev, "dev1/other")
    # Forgotten: back to the built-in rights.
    auth.forget(THING, "dev1")
    assert auth.may_publish(dev, "dev1/secret") and not auth.may_publish(dev, "shared/x")
    # Every denial is counted, cached or not.
    assert auth.denied[Action.PUBLISH.value] == 3


def test_decisions_are_per_connection_and_per_action() -> None:
    auth = GatewayAuthorizer()
    other = ThingIdentity(certificate_id="b" * 64, thing_name="dev2", project="default")
    auth.remember(THING, "dev1", builtin_policy(THING, "dev1"))
    auth.remember(other, "dev2", builtin_policy(other, "dev2"))
    dev1, dev2 = Client("dev1", THING), Client("dev2", other)
    assert auth.may_publish(dev1, "dev1/x")
    assert not auth.may_publish(dev2, "dev1/x")
    assert auth.may_publish(dev1, "$aws/rules/FHIRIngest")
    assert not auth.may_receive(dev1, "$aws/rules/FHIRIngest")  # rules never deliver
    assert not auth.may_subscribe(dev1, "$aws/rules/FHIRIngest")


def test_the_decision_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authz_module, "MAX_DECISIONS", 8)
    auth = GatewayAuthorizer()
    auth.remember(THING, "dev1", builtin_policy(THING, "dev1"))
    dev = Client("dev1", THING)
    for i in range(100):
        assert auth.may_publish(dev, f"dev1/{i}")
    assert len(auth._decisions) <= 8
    huge = "dev1/" + "x" * (authz_module.MAX_CACHED_TARGET + 1)
    auth._decisions.clear()
    assert auth.may_publish(dev, huge) and not auth._decisions  # long topics are not kept
