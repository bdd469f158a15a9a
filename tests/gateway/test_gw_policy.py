"""The policy engine and the authorizer: built-in device and claim policies, documents with
variables, Deny over Allow, and denial counting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lantern.gateway import AnonymousIdentity, ClaimIdentity, ThingIdentity, UserIdentity
from lantern.gateway.authorizer import GatewayAuthorizer, builtin_policy
from lantern.gateway.errors import PolicyError
from lantern.gateway.policy import (
    CLIENT_ID_VAR,
    THING_NAME_VAR,
    Action,
    PolicySet,
    validate_policy_document,
)
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode

THING = ThingIdentity(certificate_id="a" * 64, thing_name="dev1", project="default")
CLAIM = ClaimIdentity(
    certificate_id="b" * 64,
    claim_id="claim-1",
    project="default",
    allowed_templates=frozenset({"DefaultProvisioningTemplate"}),
)


@dataclass
class Client:
    client_id: str
    identity: object
    protocol_level: int = 5

    def deliver(
        self, topic: str, payload: bytes, qos: int = 0, properties: Properties = EMPTY_PROPERTIES
    ) -> None: ...

    def close(self, reason_code: ReasonCode) -> None: ...


def test_device_may_use_only_its_own_topics() -> None:
    auth = GatewayAuthorizer()
    dev = Client("dev1", THING)
    for topic in ("$aws/things/dev1/jobs/get", "$aws/rules/FHIRIngest", "dev1", "dev1/x/y"):
        assert auth.may_publish(dev, topic), topic
    for topic in (
        "$aws/things/dev2/jobs/get",
        "dev2",
        "dev10/x",
        "other",
        "$aws/certificates/create/json",
    ):
        assert not auth.may_publish(dev, topic), topic
    for filt in ("$aws/things/dev1/jobs/get/+", "$aws/things/dev1/jobs/notify", "dev1", "dev1/#"):
        assert auth.may_subscribe(dev, filt), filt
    for filt in (
        "$aws/#",
        "#",
        "+/x",
        "$aws/things/+/jobs/get",
        "$aws/things/dev2/#",
        "dev2/#",
        "$aws/rules/FHIRIngest",
    ):
        assert not auth.may_subscribe(dev, filt), filt
    assert auth.may_receive(dev, "dev1/x") and not auth.may_receive(dev, "dev2/x")
    assert auth.denied["iot:Publish"] == 5 and auth.denied["iot:Subscribe"] == 7


def test_claim_may_use_only_identity_topics_of_its_templates() -> None:
    auth = GatewayAuthorizer()
    claim = Client("anything", CLAIM)
    ok = [
        "$aws/certificates/create/json",
        "$aws/certificates/create-from-csr/cbor",
        "$aws/provisioning-templates/DefaultProvisioningTemplate/provision/json",
    ]
    for topic in ok:
        assert auth.may_publish(claim, topic)
        assert auth.may_subscribe(claim, f"{topic}/accepted")
        assert auth.may_subscribe(claim, f"{topic}/rejected")
        assert auth.may_receive(claim, f"{topic}/accepted")
    for topic in (
        "$aws/provisioning-templates/Other/provision/json",
        "$aws/things/x/jobs/get",
        "anything",
        "$aws/rules/FHIRIngest",
        "$aws/certificates/create/json/accepted",
    ):
        assert not auth.may_publish(claim, topic), topic
    for filt in (
        "#",
        "$aws/#",
        "$aws/provisioning-templates/+/provision/json/accepted",
        "$aws/provisioning-templates/Other/provision/json/accepted",
    ):
        assert not auth.may_subscribe(claim, filt), filt


def test_policy_documents_with_variables_and_explicit_deny() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Subscribe"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123:topic/fleet/${iot:Connection.Thing.ThingName}/*",
                    "arn:aws:iot:us-east-1:123:topicfilter/fleet/*",
                    "topic/clients/${iot:ClientId}",
                ],
            },
            {"Effect": "Deny", "Action": "iot:*", "Resource": "topicfilter/fleet/secret/*"},
        ],
    }
    validate_policy_document(doc)
    policies = PolicySet.from_documents([doc], {THING_NAME_VAR: "dev1", CLIENT_ID_VAR: "c*"})
    assert policies.allows(Action.PUBLISH, "fleet/dev1/temp")
    assert not policies.allows(Action.PUBLISH, "fleet/dev2/temp")
    assert policies.allows(Action.SUBSCRIBE, "fleet/+/temp")
    assert not policies.allows(Action.SUBSCRIBE, "fleet/secret/#")
    assert policies.allows(Action.PUBLISH, "clients/c*")
    assert not policies.allows(Action.PUBLISH, "clients/cX")  # a variable's value is literal
    # No thing name (e.g. a user account): statements needing it match nothing.
    user = PolicySet.from_documents([doc], {THING_NAME_VAR: None, CLIENT_ID_VAR: "u"})
    assert not user.allows(Action.PUBLISH, "fleet/None/temp")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "JSON object"),
        ({"Statement": []}, "non-empty Statement"),
        ({"Statement": [{"Effect": "Maybe", "Action": "iot:Publish", "Resource": "*"}]}, "Effect"),
        (
            {"Statement": [{"Effect": "Allow", "Action": "iot:Fly", "Resource": "*"}]},
            "unknown action",
        ),
        ({"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": []}]}, "Resource"),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${iot:Foo}"}
                ]
            },
            "unknown variable",
        ),
    ],
)
def test_malformed_policy_documents_are_refused(doc: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        validate_policy_document(doc)


def test_users_without_policy_get_nothing_and_anonymous_gets_all_but_reserved() -> None:
    auth = GatewayAuthorizer()
    user = UserIdentity(username="dash", project="default")
    assert not auth.may_subscribe(Client("u", user), "#")
    anon = Client("a", AnonymousIdentity(listener="tcp"))
    assert auth.may_subscribe(anon, "#") and auth.may_publish(anon, "x/y")
    assert not auth.may_publish(anon, "$aws/certificates/create/json")
    assert not auth.may_publish(Client("x", object()), "x")


def test_remembered_policies_replace_the_builtin_ones() -> None:
    auth = GatewayAuthorizer()
    extra = PolicySet.from_documents(
        [
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/shared/*"}
                ]
            }
        ],
        {},
    )
    base = builtin_policy(THING, "dev1")
    auth.remember(THING, "dev1", PolicySet([*base.policies, *extra.policies]))
    dev = Client("dev1", THING)
    assert auth.may_publish(dev, "shared/x") and auth.may_publish(dev, "dev1/x")
    auth.forget(THING, "dev1")
    assert not auth.may_publish(dev, "shared/x") and auth.may_publish(dev, "dev1/x")
