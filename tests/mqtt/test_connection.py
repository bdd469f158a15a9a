"""ServerConnection: states, topic aliases both ways, receive maximum, outbound size limits."""

from __future__ import annotations

from typing import Any

import pytest

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.connection import ConnectionState, ServerConnection
from lantern.mqtt.errors import (
    LocalProtocolError,
    PacketTooLarge,
    ProtocolError,
    ProtocolViolation,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    UnsupportedProtocolVersion,
)
from lantern.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
)
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode as RC

S = ConnectionState


def feed(conn: ServerConnection, *packets: Packet, level: int) -> list[Packet]:
    conn.receive_data(b"".join(encode(p, level) for p in packets))
    events = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events


def client_view(data: bytes, level: int) -> list[Packet]:
    decoder = Decoder(protocol_level=level, expect_connect=False)
    decoder.feed(data)
    out = []
    while (packet := decoder.next_packet()) is not None:
        out.append(packet)
    return out


def connected(
    level: int = 5, connect_props: Properties | None = None, **kwargs: Any
) -> ServerConnection:
    conn = ServerConnection(**kwargs)
    connect = Connect("dev", level, properties=connect_props or Properties())
    assert feed(conn, connect, level=level) == [connect]
    conn.send(Connack(False))
    assert conn.state is S.CONNECTED
    return conn


# -- states --------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [4, 5])
def test_handshake(level: int) -> None:
    conn = ServerConnection(topic_alias_maximum=10, receive_maximum=20, max_packet_size=5000)
    assert conn.state is S.AWAIT_CONNECT
    [event] = feed(conn, Connect("dev", level, keep_alive=30), level=level)
    assert isinstance(event, Connect) and event.keep_alive == 30
    assert conn.state is S.CONNECTING
    assert conn.protocol_level == level
    [connack] = client_view(conn.send(Connack(False)), level)
    assert conn.state is S.CONNECTED
    assert isinstance(connack, Connack) and connack.reason_code == RC.SUCCESS
    if level == 5:
        assert connack.properties.topic_alias_maximum == 10
        assert connack.properties.receive_maximum == 20
        assert connack.properties.maximum_packet_size == 5000
    else:
        assert connack.properties == Properties()


def test_client_may_pipeline_before_connack_and_use_auth() -> None:
    conn = ServerConnection()
    events = feed(
        conn,
        Connect("dev", 5),
        Auth(RC.CONTINUE_AUTHENTICATION),
        Publish("t", b"early"),
        level=5,
    )
    assert [type(e) for e in events] == [Connect, Auth, Publish]
    assert conn.state is S.CONNECTING
    assert conn.send(Auth(RC.CONTINUE_AUTHENTICATION))
    with pytest.raises(LocalProtocolError, match="CONNACK"):
        conn.send(Publish("t", b"x"))
    conn.send(Connack(False))
    assert conn.state is S.CONNECTED


def test_nothing_may_be_sent_before_connect() -> None:
    conn = ServerConnection()
    with pytest.raises(LocalProtocolError, match="AWAIT_CONNECT"):
        conn.send(Connack(False))


def test_packet_before_connect_is_an_error() -> None:
    conn = ServerConnection()
    conn.receive_data(encode(Pingreq(), 4))
    with pytest.raises(ProtocolViolation, match=r"\[MQTT-3.1.0-1\]"):
        conn.next_event()
    assert conn.state is S.ERROR
    assert conn.next_event() is None
    with pytest.raises(LocalProtocolError):
        conn.send(Disconnect())  # no CONNACK was sent: only a CONNACK may report the error
    assert conn.send(Connack(False, RC.PROTOCOL_ERROR)) == b"\x20\x02\x00\x05"
    assert conn.state is S.CLOSED


@pytest.mark.parametrize("level", [4, 5])
def test_second_connect(level: int) -> None:
    conn = connected(level)
    conn.receive_data(encode(Connect("again", level), level))
    with pytest.raises(ProtocolViolation, match=r"\[MQTT-3.1.0-2\]") as info:
        conn.next_event()
    assert conn.state is S.ERROR
    data = conn.send(Disconnect(info.value.reason_code))
    assert conn.state is S.CLOSED
    if level == 5:
        assert client_view(data, 5) == [Disconnect(RC.PROTOCOL_ERROR)]
    else:
        assert data == b""  # 3.1.1 servers have no DISCONNECT: just close
    with pytest.raises(LocalProtocolError):
        conn.send(Pingresp())


@pytest.mark.parametrize("packet", [Connack(False), Suback(1, (RC.SUCCESS,)), Pingresp()])
def test_server_only_packets_from_client(packet: Packet) -> None:
    conn = connected(5)
    conn.receive_data(encode(packet, 5))
    with pytest.raises(ProtocolViolation, match="expected one of"):
        conn.next_event()


@pytest.mark.parametrize(
    ("level", "wire"), [(3, b"\x20\x02\x00\x01"), (6, b"\x20\x03\x00\x84\x00")]
)
def test_unsupported_version_answered_in_a_readable_format(level: int, wire: bytes) -> None:
    conn = ServerConnection()
    conn.receive_data(encode(Connect("old", 4), 4).replace(b"MQTT\x04", b"MQTT" + bytes([level])))
    with pytest.raises(UnsupportedProtocolVersion) as info:
        conn.next_event()
    assert conn.send(Connack(False, info.value.reason_code)) == wire
    assert conn.state is S.CLOSED


def test_refused_connack_closes_and_ignores_pipelined_packets() -> None:
    conn = ServerConnection()
    feed(conn, Connect("dev", 5), level=5)
    conn.receive_data(encode(Publish("t", b"x"), 5))
    conn.send(Connack(False, RC.NOT_AUTHORIZED))
    assert conn.state is S.CLOSED
    assert conn.next_event() is None


def test_disconnect_from_client_ends_events() -> None:
    conn = connected(5)
    events = feed(conn, Pingreq(), Disconnect(), Publish("after", b""), level=5)
    assert events == [Pingreq(), Disconnect()]
    assert conn.state is S.CLOSED
    conn.receive_data(b"\xc0\x00")
    assert conn.next_event() is None


def test_disconnect_may_not_raise_session_expiry_from_zero() -> None:
    # [MQTT-3.14.2-2]: CONNECT had no Session Expiry Interval (0); the DISCONNECT sets one.
    conn = connected(5)
    conn.receive_data(encode(Disconnect(properties=Properties(session_expiry_interval=30)), 5))
    with pytest.raises(ProtocolViolation, match=r"\[MQTT-3.14.2-2\]") as info:
        conn.next_event()
    assert info.value.reason_code == RC.PROTOCOL_ERROR
    assert conn.state is S.ERROR
    # The one packet still allowed out reports it; then the connection is closed.
    data = conn.send(Disconnect(info.value.reason_code))
    assert client_view(data, 5) == [Disconnect(RC.PROTOCOL_ERROR)]
    assert conn.state is S.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(Disconnect(RC.PROTOCOL_ERROR))


@pytest.mark.parametrize(
    ("connect_expiry", "disconnect_expiry"), [(None, 0), (60, 30), (60, 0), (1, 0xFFFFFFFF)]
)
def test_disconnect_session_expiry_allowed(
    connect_expiry: int | None, disconnect_expiry: int
) -> None:
    conn = connected(5, Properties(session_expiry_interval=connect_expiry))
    disconnect = Disconnect(properties=Properties(session_expiry_interval=disconnect_expiry))
    assert feed(conn, disconnect, level=5) == [disconnect]
    assert conn.state is S.CLOSED


def test_server_disconnect_closes() -> None:
    conn = connected(5)
    assert client_view(conn.send(Disconnect(RC.SERVER_SHUTTING_DOWN)), 5) == [
        Disconnect(RC.SERVER_SHUTTING_DOWN)
    ]
    assert conn.state is S.CLOSED


def test_normal_traffic() -> None:
    conn = connected(4)
    sub = Subscribe(1, (SubscriptionRequest("a/+", 1),))
    assert feed(conn, sub, Pingreq(), level=4) == [sub, Pingreq()]
    assert conn.send(Suback(1, (RC.GRANTED_QOS_1,))) == b"\x90\x03\x00\x01\x01"
    assert conn.send(Pingresp()) == b"\xd0\x00"


# -- inbound topic aliases -----------------------------------------------------------------


def _alias(alias: int, content_type: str | None = None) -> Properties:
    return Properties(topic_alias=alias, content_type=content_type)


def test_inbound_alias_is_resolved_and_stripped() -> None:
    conn = connected(5, topic_alias_maximum=3)
    events = feed(
        conn,
        Publish("dev/1/temp", b"1", properties=_alias(2, content_type="t")),
        Publish("", b"2", properties=_alias(2)),
        Publish("dev/1/hum", b"3", properties=_alias(2)),  # remap
        Publish("", b"4", properties=_alias(2)),
        level=5,
    )
    assert [(e.topic, e.payload) for e in events if isinstance(e, Publish)] == [
        ("dev/1/temp", b"1"),
        ("dev/1/temp", b"2"),
        ("dev/1/hum", b"3"),
        ("dev/1/hum", b"4"),
    ]
    assert all(isinstance(e, Publish) and e.properties.topic_alias is None for e in events)
    assert isinstance(events[0], Publish) and events[0].properties.content_type == "t"


@pytest.mark.parametrize(
    ("maximum", "publish", "error"),
    [
        (3, Publish("t", b"", properties=_alias(4)), TopicAliasInvalid),
        (0, Publish("t", b"", properties=_alias(1)), TopicAliasInvalid),
        (3, Publish("", b"", properties=_alias(1)), ProtocolViolation),
    ],
    ids=["above maximum", "aliases not offered", "unknown alias"],
)
def test_inbound_alias_errors(maximum: int, publish: Publish, error: type[ProtocolError]) -> None:
    conn = connected(5, topic_alias_maximum=maximum)
    conn.receive_data(encode(publish, 5))
    with pytest.raises(error) as info:
        conn.next_event()
    assert type(info.value) is error
    assert conn.state is S.ERROR


def test_inbound_alias_zero() -> None:
    conn = connected(5, topic_alias_maximum=3)
    conn.receive_data(b"\x30\x07\x00\x01t\x03\x23\x00\x00")
    with pytest.raises(TopicAliasInvalid):
        conn.next_event()


def test_client_publish_with_subscription_identifier() -> None:
    conn = connected(5)
    conn.receive_data(
        encode(Publish("t", b"", properties=Properties(subscription_identifiers=(1,))), 5)
    )
    with pytest.raises(ProtocolViolation, match=r"\[MQTT-3.3.4-6\]"):
        conn.next_event()


# -- outbound topic aliases ----------------------------------------------------------------


def test_outbound_aliases_first_come() -> None:
    conn = connected(5, Properties(topic_alias_maximum=2))
    sent = [
        client_view(conn.send(Publish(topic, b"x")), 5)[0]
        for topic in ("a", "a", "b", "c", "b", "a")
    ]
    wire = [(p.topic, p.properties.topic_alias) for p in sent if isinstance(p, Publish)]
    assert wire == [("a", 1), ("", 1), ("b", 2), ("c", None), ("", 2), ("", 1)]


def test_outbound_aliases_off_for_311_and_when_disabled() -> None:
    for conn in (
        connected(4),
        connected(5, Properties(topic_alias_maximum=5), outbound_topic_aliases=False),
    ):
        level = conn.protocol_level or 4
        for _ in range(2):
            [p] = client_view(conn.send(Publish("a/b", b"x")), level)
            assert isinstance(p, Publish) and p.topic == "a/b" and p.properties.topic_alias is None


# -- receive maximum -----------------------------------------------------------------------


def test_inbound_receive_maximum() -> None:
    conn = connected(5, receive_maximum=2)
    feed(conn, Publish("t", b"", 1, packet_id=1), Publish("t", b"", 2, packet_id=2), level=5)
    assert conn.inbound_inflight == 2
    # QoS 0 and a retransmission of an id already counted are fine.
    feed(conn, Publish("t", b""), Publish("t", b"", 1, dup=True, packet_id=1), level=5)
    conn.send(Puback(1))
    feed(conn, Publish("t", b"", 1, packet_id=3), level=5)
    conn.send(Pubrec(2))
    assert conn.inbound_inflight == 2  # QoS 2 counts until PUBCOMP
    assert feed(conn, Pubrel(2), level=5) == [Pubrel(2)]
    conn.send(Pubcomp(2))
    assert conn.inbound_inflight == 1
    feed(conn, Publish("t", b"", 1, packet_id=4), level=5)
    conn.receive_data(encode(Publish("t", b"", 1, packet_id=5), 5))
    with pytest.raises(ReceiveMaximumExceeded) as info:
        conn.next_event()
    assert info.value.reason_code == RC.RECEIVE_MAXIMUM_EXCEEDED


def test_failed_pubrec_ends_the_flow() -> None:
    conn = connected(5, receive_maximum=1)
    feed(conn, Publish("t", b"", 2, packet_id=1), level=5)
    conn.send(Pubrec(1, RC.QUOTA_EXCEEDED))
    assert conn.inbound_inflight == 0
    feed(conn, Publish("t", b"", 2, packet_id=2), level=5)


def test_outbound_quota_follows_client_receive_maximum() -> None:
    conn = connected(5, Properties(receive_maximum=2))
    assert conn.outbound_quota == 2
    conn.send(Publish("t", b"", 1, packet_id=1))
    conn.send(Publish("t", b"", 2, packet_id=2))
    conn.send(Publish("t", b""))
    assert conn.outbound_quota == 0
    feed(conn, Puback(1), level=5)
    assert conn.outbound_quota == 1
    feed(conn, Pubrec(2), level=5)
    assert conn.outbound_quota == 1
    feed(conn, Pubcomp(2), level=5)
    assert conn.outbound_quota == 2


def test_granted_maximum_qos_and_retain() -> None:
    conn = ServerConnection()
    feed(conn, Connect("dev", 5), level=5)
    conn.send(Connack(False, properties=Properties(maximum_qos=1, retain_available=False)))
    feed(conn, Publish("t", b"", 1, packet_id=1), level=5)
    conn.receive_data(encode(Publish("t", b"", 2, packet_id=2), 5))
    with pytest.raises(ProtocolViolation) as info:
        conn.next_event()
    assert info.value.reason_code == RC.QOS_NOT_SUPPORTED

    conn = ServerConnection()
    feed(conn, Connect("dev", 5), level=5)
    conn.send(Connack(False, properties=Properties(retain_available=False)))
    conn.receive_data(encode(Publish("t", b"", retain=True), 5))
    with pytest.raises(ProtocolViolation) as info:
        conn.next_event()
    assert info.value.reason_code == RC.RETAIN_NOT_SUPPORTED


# -- packet sizes --------------------------------------------------------------------------


def test_outbound_publish_above_client_maximum_is_dropped() -> None:
    conn = connected(5, Properties(maximum_packet_size=40, topic_alias_maximum=5))
    assert conn.send(Publish("big", b"x" * 100, 1, packet_id=1)) == b""
    assert conn.last_send_dropped and conn.dropped_publishes == 1
    assert conn.outbound_quota == 65535  # treated as delivered, not in flight
    data = conn.send(Publish("big", b"x" * 10))
    assert not conn.last_send_dropped
    [p] = client_view(data, 5)
    # The dropped PUBLISH did not claim an alias.
    assert isinstance(p, Publish) and p.topic == "big" and p.properties.topic_alias == 1


def test_other_packets_lose_reason_string_to_fit() -> None:
    conn = connected(5, Properties(maximum_packet_size=20))
    fat = Properties(reason_string="r" * 50, user_properties=(("k", "v" * 30),))
    [ack] = client_view(conn.send(Puback(7, RC.NO_MATCHING_SUBSCRIBERS, fat)), 5)
    assert ack == Puback(7, RC.NO_MATCHING_SUBSCRIBERS)
    with pytest.raises(LocalProtocolError, match=r"\[MQTT-3.1.2-24\]"):
        conn.send(Suback(1, (RC.GRANTED_QOS_0,) * 30))


def test_connack_maximum_packet_size_limits_inbound() -> None:
    conn = ServerConnection()
    feed(conn, Connect("dev", 5), level=5)
    conn.send(Connack(False, properties=Properties(maximum_packet_size=64)))
    assert conn.max_packet_size == 64
    conn.receive_data(encode(Publish("t", b"x" * 100), 5))
    with pytest.raises(PacketTooLarge):
        conn.next_event()
