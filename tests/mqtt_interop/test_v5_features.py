"""MQTT 5 scenarios of the Paho interop suite (client_test5.py): session expiry, properties
passed through, message expiry, subscribe options, subscription identifiers, request/response,
shared subscriptions. paho-mqtt 5.0 over plain TCP; raw packets where paho hides the wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from lantern.mqtt.packets import Disconnect, Subscribe, SubscriptionRequest, Will
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode
from mqtt_interop.harness import (
    TOPICS,
    WAIT,
    WILDTOPICS,
    Message,
    PahoClient,
    paho_props,
)
from mqtt_interop.raw import RawClient

PahoFactory = Callable[..., PahoClient]
RawFactory = Callable[..., RawClient]
USER_PROPS = [("a", "2"), ("c", "3")]


def expiry(seconds: int) -> PahoProperties:
    return paho_props(PacketTypes.CONNECT, SessionExpiryInterval=seconds)


def test_session_expiry(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    # Session Expiry Interval 0: the session ends with the connection.
    assert a.connect(properties=expiry(0)).session_present is False
    a.subscribe(TOPICS[0], 2)
    a.disconnect()
    assert a.connect(clean_start=False, properties=expiry(0)).session_present is False
    a.disconnect()

    # 1 s: still there right away (with its subscription), gone once it expired.
    assert a.connect(properties=expiry(1)).session_present is False
    a.subscribe(TOPICS[0], 2)
    a.disconnect()
    assert a.connect(clean_start=False, properties=expiry(1)).session_present is True
    a.publish(TOPICS[0], b"still subscribed", 1)
    assert a.expect().payload == b"still subscribed"
    a.disconnect()
    time.sleep(1.3)  # let the 1 s expiry pass
    assert a.connect(clean_start=False, properties=expiry(1)).session_present is False
    a.publish(TOPICS[0], b"no longer subscribed", 1)
    a.expect_none()

    # DISCONNECT may lengthen the interval ([MQTT-3.14.2-2] only forbids 0 -> >0) ...
    a.subscribe(TOPICS[0], 2)
    a.disconnect(SessionExpiryInterval=5)
    time.sleep(1.3)  # past the CONNECT's 1 s, within the DISCONNECT's 5 s
    assert a.connect(clean_start=False, properties=expiry(1)).session_present is True
    # ... or end the session at once.
    a.disconnect(SessionExpiryInterval=0)
    assert a.connect(clean_start=False, properties=expiry(1)).session_present is False


def test_session_expiry_cannot_be_set_on_disconnect_when_it_was_zero(
    paho_client: PahoFactory, raw_client: RawFactory
) -> None:
    # [MQTT-3.14.2-2]: CONNECT had 0 (absent), DISCONNECT sets > 0. The server does not treat
    # it as a valid DISCONNECT: it answers DISCONNECT 0x82 Protocol Error, and as the
    # disconnection is not normal the will is published ([MQTT-3.1.2-8]).
    watcher = paho_client("watcher")
    watcher.connect()
    watcher.subscribe(TOPICS[2], 1)
    c = raw_client()
    c.connect("myclientid", will=Will(TOPICS[2], b"not a valid disconnect"))
    c.send(Disconnect(ReasonCode.SUCCESS, Properties(session_expiry_interval=30)))
    packets = c.until_closed()
    assert watcher.expect().payload == b"not a valid disconnect"
    assert packets == [Disconnect(ReasonCode.PROTOCOL_ERROR)]
    c2 = raw_client()
    assert c2.connect("myclientid", clean_start=False).session_present is False


def test_user_properties_pass_through_in_order(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    a.connect()
    a.subscribe(TOPICS[0], 2)
    for qos in (0, 1, 2):
        a.publish(TOPICS[0], b"", qos, UserProperty=USER_PROPS)
    got = a.expect_n(3)
    assert sorted(m.qos for m in got) == [0, 1, 2]
    # [MQTT-3.3.2-17/18]: forwarded unaltered, order kept.
    assert [m.properties.UserProperty for m in got] == [USER_PROPS] * 3


def test_payload_format_and_content_type_pass_through(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    a.connect()
    a.subscribe(TOPICS[0], 2)
    for qos in (0, 1, 2):
        a.publish(TOPICS[0], b"{}", qos, PayloadFormatIndicator=1, ContentType="My name")
    got = a.expect_n(3)
    assert sorted(m.qos for m in got) == [0, 1, 2]
    for m in got:  # [MQTT-3.3.2-4], [MQTT-3.3.2-20]
        assert m.properties.PayloadFormatIndicator == 1
        assert m.properties.ContentType == "My name"


def test_message_expiry(paho_client: PahoFactory) -> None:
    b = paho_client("myclientid2")
    b.connect(properties=expiry(99999))
    b.subscribe(TOPICS[0], 2)
    b.disconnect()
    a = paho_client("myclientid")
    a.connect()
    a.publish(TOPICS[0], b"qos 1 - expire", 1, MessageExpiryInterval=1)
    a.publish(TOPICS[0], b"qos 2 - expire", 2, MessageExpiryInterval=1)
    a.publish(TOPICS[0], b"qos 1 - don't expire", 1, MessageExpiryInterval=60)
    a.publish(TOPICS[0], b"qos 2 - don't expire", 2, MessageExpiryInterval=60)
    time.sleep(1.3)  # let the first two expire while queued
    assert b.connect(clean_start=False, properties=expiry(99999)).session_present is True
    got = b.expect_n(2)
    b.expect_none()
    assert sorted(m.payload for m in got) == [b"qos 1 - don't expire", b"qos 2 - don't expire"]
    for m in got:  # [MQTT-3.3.2-6]: minus the time spent waiting in the server
        assert 55 <= m.properties.MessageExpiryInterval < 60, m.properties


def test_no_local(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    b = paho_client("myclientid2")
    a.connect()
    b.connect()
    a.subscribe(TOPICS[0], 2, noLocal=True)
    b.subscribe(TOPICS[0], 2, noLocal=True)
    a.publish(TOPICS[0], b"noLocal test", 1)
    assert b.expect().payload == b"noLocal test"
    a.expect_none()  # [MQTT-3.8.3-3]
    b.expect_none()


def test_retain_as_published(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    a.connect()
    a.subscribe(TOPICS[0], 2, retainAsPublished=True)
    a.publish(TOPICS[0], b"retain as published false", 1)
    a.publish(TOPICS[0], b"retain as published true", 1, retain=True)
    got = a.expect_n(2)
    assert [(m.payload, m.retain) for m in got] == [
        (b"retain as published false", False),
        (b"retain as published true", True),  # [MQTT-3.3.1-13]
    ]
    plain = paho_client("plain")
    plain.connect()
    plain.subscribe(TOPICS[0], 2)  # gets the retained message: RETAIN 1
    assert plain.expect().retain is True
    a.publish(TOPICS[0], b"live", 1, retain=True)
    assert plain.expect().retain is False  # [MQTT-3.3.1-12]: live copy, RAP off
    assert a.expect().retain is True


def test_retain_handling(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    a.connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        a.publish(topic, f"qos {qos}".encode(), qos, retain=True)

    # 1: send retained messages only if the subscription did not exist.
    a.subscribe(WILDTOPICS[5], 2, retainHandling=1)
    assert sorted(m.qos for m in a.expect_n(3)) == [0, 1, 2]
    a.subscribe(WILDTOPICS[5], 2, retainHandling=1)
    a.expect_none()
    a.disconnect()

    # 2: never send retained messages on subscribe.
    a.connect()
    a.subscribe(WILDTOPICS[5], 2, retainHandling=2)
    a.subscribe(WILDTOPICS[5], 2, retainHandling=2)
    a.expect_none()
    a.disconnect()

    # 0: send them on every subscribe, even a repeated one ([MQTT-3.3.1-9/10]).
    a.connect()
    a.subscribe(WILDTOPICS[5], 2, retainHandling=0)
    assert sorted(m.qos for m in a.expect_n(3)) == [0, 1, 2]
    a.subscribe(WILDTOPICS[5], 2, retainHandling=0)
    assert sorted(m.qos for m in a.expect_n(3)) == [0, 1, 2]
    a.expect_none()


def test_subscription_identifiers(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")
    a.connect()
    a.subscribe(TOPICS[0], 2, sub_id=456789)
    b = paho_client("myclientid2")
    b.connect()
    b.subscribe(TOPICS[0], 2, sub_id=2)
    b.subscribe(TOPICS[0] + "/#", 2, sub_id=3)
    c = paho_client("no-ids")
    c.connect()
    c.subscribe(TOPICS[0], 1)

    b.publish(TOPICS[0], b"sub identifier test", 1)
    assert a.expect().properties.SubscriptionIdentifier == [456789]  # [MQTT-3.3.4-3]
    a.expect_none()
    # Overlapping subscriptions: one copy carrying both ids ([MQTT-3.3.4-4]), or one copy per
    # subscription each with its own id ([MQTT-3.3.4-5]).
    first = b.expect()
    second = b.maybe()
    if second is None:
        assert sorted(first.properties.SubscriptionIdentifier) == [2, 3]
    else:
        assert sorted(
            first.properties.SubscriptionIdentifier + second.properties.SubscriptionIdentifier
        ) == [2, 3]
    b.expect_none()
    got = c.expect()
    assert not hasattr(got.properties, "SubscriptionIdentifier"), got.properties

    # A retained message sent because of a SUBSCRIBE carries that subscription's id.
    b.publish(TOPICS[1], b"retained", 1, retain=True)
    a.subscribe(TOPICS[1], 1, sub_id=77)
    assert a.expect().properties.SubscriptionIdentifier == [77]


def test_request_response(paho_client: PahoFactory) -> None:
    a = paho_client("myclientid")  # requester
    b = paho_client("myclientid2")  # responder
    a.connect()
    b.connect()
    a.subscribe(TOPICS[0], 2, noLocal=True)
    b.subscribe(TOPICS[0], 2, noLocal=True)
    a.publish(TOPICS[0], b"request", 1, ResponseTopic=TOPICS[0], CorrelationData=b"334")
    request = b.expect()
    # [MQTT-3.3.2-15/16]: response topic and correlation data unaltered.
    assert request.properties.ResponseTopic == TOPICS[0]
    assert request.properties.CorrelationData == b"334"
    b.publish(request.properties.ResponseTopic, b"response", 1, CorrelationData=b"334")
    response = a.expect()
    assert (response.payload, response.properties.CorrelationData) == (b"response", b"334")
    a.expect_none()
    b.expect_none()


@pytest.mark.parametrize("level", [5, 4], ids=["v5", "v311"])
def test_shared_subscriptions(paho_client: PahoFactory, level: int) -> None:
    shared = "$share/sharename/client_test5/x"
    a = paho_client("myclientid", level)
    b = paho_client("myclientid2", level)
    for c in (a, b):
        assert c.connect().session_present is False
        assert c.subscribe(shared, 2) == [2]
        assert c.subscribe(TOPICS[0], 2) == [2]

    b.publish(TOPICS[0], b"to everyone", 0)
    assert a.expect().payload == b"to everyone"
    assert b.expect().payload == b"to everyone"

    count = 10
    for i in range(count):
        b.publish("client_test5/x", f"message {i}".encode(), 1)
    received: list[Message] = []
    deadline = time.monotonic() + WAIT
    while len(received) < count and time.monotonic() < deadline:
        for c in (a, b):
            m = c.maybe(0.02)
            if m is not None:
                received.append(m)
    a.expect_none()
    b.expect_none()
    # Each message exactly once, to one member of the group.
    assert sorted(m.payload for m in received) == sorted(
        f"message {i}".encode() for i in range(count)
    )


def test_no_local_on_a_shared_subscription_is_a_protocol_error(raw_client: RawFactory) -> None:
    c = raw_client()
    c.connect("myclientid")
    c.send(Subscribe(1, (SubscriptionRequest("$share/g/TopicA", 1, no_local=True),)))
    assert c.until_closed() == [Disconnect(ReasonCode.PROTOCOL_ERROR)]  # [MQTT-3.8.3-4]
