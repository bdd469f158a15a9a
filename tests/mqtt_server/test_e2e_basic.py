"""paho-mqtt (5.0 and 3.1.1) over mTLS against an in-process server: the core paths."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes

from lantern.mqtt.packets import Connack
from lantern.mqtt.reason_codes import ReasonCode
from lantern.pki import CertificateAuthority, KeyType
from support.mqtt_server import Client, MQTTTestPKI, RawTLS, ServerThread, props, reason_value

# Also on a two-node cluster, clients alternating between nodes (see conftest.py).
CLUSTER_SCENARIOS = True
# Exactly alternating members is a one-node property: across nodes NATS picks the node (the
# cluster's balance is tested in tests/cluster).
ONE_NODE_ONLY = ("test_shared_subscription_round_robin",)

CONNECT = PacketTypes.CONNECT
PUBLISH = PacketTypes.PUBLISH
SUBSCRIBE = PacketTypes.SUBSCRIBE


@pytest.mark.parametrize("version", [5, 4])
def test_publish_subscribe_qos0_1_2(make_client: Callable[..., Client], version: int) -> None:
    sub = make_client("sub", version)
    sub.connect()
    assert [reason_value(c) for c in sub.subscribe("sensors/+/temp", 2)] == [2]
    pub = make_client("pub", version)
    pub.connect()
    for qos in (0, 1, 2):
        pub.publish(f"sensors/{qos}/temp", b"21.5", qos=qos)
        got = sub.expect()
        assert (got.topic, got.payload, got.qos, got.retain) == (
            f"sensors/{qos}/temp",
            b"21.5",
            qos,
            False,
        )


def test_qos_is_downgraded_to_the_subscription(make_client: Callable[..., Client]) -> None:
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("t", 1)
    pub = make_client("pub", 4)
    pub.connect()
    pub.publish("t", b"x", qos=2)
    assert sub.expect().qos == 1


def test_wildcards_and_dollar_topics(make_client: Callable[..., Client]) -> None:
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("#", 0)
    sub.subscribe("$aws/things/+/jobs/#", 0)
    pub = make_client("pub")
    pub.connect()
    pub.publish("$SYS/x", b"hidden", qos=1)  # '#' must not match a $ topic
    pub.publish("$aws/things/t1/jobs/notify", b"job", qos=1)
    got = sub.expect()
    assert (got.topic, got.payload) == ("$aws/things/t1/jobs/notify", b"job")
    pub.publish("a/b", b"plain", qos=1)
    assert sub.expect().topic == "a/b"
    sub.expect_none()


def test_overlapping_subscriptions_deliver_once_with_every_id(
    make_client: Callable[..., Client],
) -> None:
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("a/+", 0, props=props(SUBSCRIBE, SubscriptionIdentifier=3))
    sub.subscribe("a/#", 1, props=props(SUBSCRIBE, SubscriptionIdentifier=9))
    pub = make_client("pub")
    pub.connect()
    pub.publish("a/b", b"x", qos=1)
    got = sub.expect()
    assert got.qos == 1
    assert sorted(got.properties.SubscriptionIdentifier) == [3, 9]
    sub.expect_none()


def test_retained_set_delivered_and_deleted(make_client: Callable[..., Client]) -> None:
    pub = make_client("pub")
    pub.connect()
    pub.publish("status/dev1", b"online", qos=1, retain=True)
    sub = make_client("sub", 4)
    sub.connect()
    sub.subscribe("status/#", 1)
    got = sub.expect()
    assert (got.topic, got.payload, got.retain) == ("status/dev1", b"online", True)
    # A live delivery of a retained publish has retain=0 (no Retain As Published).
    pub.publish("status/dev1", b"busy", qos=1, retain=True)
    live = sub.expect()
    assert (live.payload, live.retain) == (b"busy", False)
    pub.publish("status/dev1", b"", qos=1, retain=True)  # deletes
    assert sub.expect().payload == b""
    late = make_client("late")
    late.connect()
    late.subscribe("status/#", 1)
    late.expect_none()


def test_retain_handling_and_retain_as_published(make_client: Callable[..., Client]) -> None:
    pub = make_client("pub")
    pub.connect()
    pub.publish("r/1", b"kept", qos=1, retain=True)
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("r/+", 1, retainHandling=2)  # never send retained
    sub.expect_none()
    sub.subscribe("r/#", 1, retainHandling=1, retainAsPublished=True)  # new: send
    got = sub.expect()
    assert (got.payload, got.retain) == (b"kept", True)
    sub.subscribe("r/#", 1, retainHandling=1, retainAsPublished=True)  # exists: do not send
    sub.expect_none()
    pub.publish("r/1", b"again", qos=1, retain=True)
    got = sub.expect()  # one copy (overlapping r/+ and r/#), retain flag as published
    assert (got.payload, got.retain) == (b"again", True)
    sub.expect_none()


def test_no_local(make_client: Callable[..., Client]) -> None:
    me = make_client("me")
    me.connect()
    me.subscribe("chat", 1, noLocal=True)
    other = make_client("other")
    other.connect()
    other.subscribe("chat", 1)
    me.publish("chat", b"hello", qos=1)
    assert other.expect().payload == b"hello"
    me.expect_none()


def test_shared_subscription_round_robin(make_client: Callable[..., Client]) -> None:
    workers = [make_client(f"w{i}", version) for i, version in enumerate((5, 4))]
    for w in workers:
        w.connect()
        w.subscribe("$share/g/jobs/+", 1)
    pub = make_client("pub")
    pub.connect()
    for i in range(6):
        pub.publish(f"jobs/{i}", str(i).encode(), qos=1)
    got = [[w.expect().payload for _ in range(3)] for w in workers]
    assert sorted(got[0] + got[1]) == [str(i).encode() for i in range(6)]
    for w in workers:
        w.expect_none(0.1)


def test_user_properties_and_request_response_pass_through(
    make_client: Callable[..., Client],
) -> None:
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("req", 1)
    pub = make_client("pub")
    pub.connect()
    sent = props(
        PUBLISH,
        UserProperty=[("a", "1"), ("b", "2")],
        ResponseTopic="resp/1",
        CorrelationData=b"\x01\x02",
        ContentType="application/json",
        PayloadFormatIndicator=1,
    )
    pub.publish("req", b"{}", qos=1, properties=sent)
    p = sub.expect().properties
    assert p.UserProperty == [("a", "1"), ("b", "2")]
    assert (p.ResponseTopic, p.CorrelationData, p.ContentType, p.PayloadFormatIndicator) == (
        "resp/1",
        b"\x01\x02",
        "application/json",
        1,
    )


def test_topic_alias_inbound(make_client: Callable[..., Client]) -> None:
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("long/topic/name", 1)
    pub = make_client("pub")
    _, _, connack_props = pub.connect()
    assert connack_props.TopicAliasMaximum == 8
    pub.publish("long/topic/name", b"1", qos=1, properties=props(PUBLISH, TopicAlias=1))
    pub.publish("", b"2", qos=1, properties=props(PUBLISH, TopicAlias=1))
    assert [sub.expect().topic for _ in range(2)] == ["long/topic/name"] * 2


def test_topic_alias_outbound(server: ServerThread, pki: MQTTTestPKI) -> None:
    from lantern.mqtt.packets import Publish, Suback, Subscribe, SubscriptionRequest
    from lantern.mqtt.properties import Properties

    raw = RawTLS.open(server.port, pki.client("raw"))
    ack = raw.connect("raw", properties=Properties(topic_alias_maximum=4))
    assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
    raw.send_packet(Subscribe(1, (SubscriptionRequest("alias/t", 0),)))
    assert isinstance(raw.read_packet(), Suback)
    server.call(lambda: server.server.publish("alias/t", b"1"))
    server.call(lambda: server.server.publish("alias/t", b"2"))
    first, second = raw.read_packet(), raw.read_packet()
    assert isinstance(first, Publish) and isinstance(second, Publish)
    assert (first.topic, first.properties.topic_alias) == ("alias/t", 1)
    assert (second.topic, second.properties.topic_alias, second.payload) == ("", 1, b"2")
    raw.close()


def test_message_expiry_is_decremented_and_expired_messages_dropped(
    make_client: Callable[..., Client],
) -> None:
    import time

    pub = make_client("pub")
    pub.connect()
    pub.publish(
        "exp/long", b"a", qos=1, retain=True, properties=props(PUBLISH, MessageExpiryInterval=100)
    )
    pub.publish(
        "exp/short", b"b", qos=1, retain=True, properties=props(PUBLISH, MessageExpiryInterval=1)
    )
    sub = make_client("sub")
    sub.connect()
    sub.subscribe("exp/long", 1)
    assert 1 <= sub.expect().properties.MessageExpiryInterval <= 100
    time.sleep(1.1)  # let the 1 s expiry pass (time-based behaviour, not synchronisation)
    sub.subscribe("exp/short", 1)
    sub.expect_none()


def test_empty_client_id(
    make_client: Callable[..., Client], server: ServerThread, pki: MQTTTestPKI
) -> None:
    v5 = make_client("")
    _, _, p = v5.connect()
    assert p.AssignedClientIdentifier.startswith("auto-")
    v4 = make_client("", 4)  # 3.1.1 with clean session: accepted
    v4.connect()
    raw = RawTLS.open(server.port, pki.client("raw"))
    ack = raw.connect("", 4, clean_start=False)  # 3.1.1 persistent session needs an id
    assert isinstance(ack, Connack)
    assert ack.reason_code == ReasonCode.CLIENT_IDENTIFIER_NOT_VALID  # return code 2 on the wire
    assert raw.read_packet(4) is None  # then closed


def test_refused_without_client_certificate(server: ServerThread, pki: MQTTTestPKI) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca.ca_file))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")
            if not tls.recv(10):
                raise ConnectionResetError("closed")
    # The server keeps serving others.
    ok = RawTLS.open(server.port, pki.client("after"))
    assert isinstance(ok.connect("after"), Connack)
    ok.close()


def test_refused_with_certificate_of_another_ca(
    server: ServerThread, pki: MQTTTestPKI, tmp_path: Path
) -> None:
    other, _ = CertificateAuthority.load_or_create(tmp_path / "other")
    issued = other.issue("intruder", KeyType.EC_P256)
    cert, key = tmp_path / "i.crt", tmp_path / "i.key"
    cert.write_text(issued.certificate_pem)
    key.write_text(issued.private_key_pem or "")
    ctx = ssl.create_default_context(cafile=str(pki.ca.ca_file))
    ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")
            if not tls.recv(10):
                raise ConnectionResetError("closed")
