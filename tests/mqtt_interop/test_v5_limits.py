"""MQTT 5 limits and timers of the Paho interop suite (client_test5.py): topic aliases both
ways, maximum packet size both ways, server keep alive, flow control (Receive Maximum) both ways,
will delay; plus the unsupported-protocol-level answer. Raw codec-level clients show the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from paho.mqtt.packettypes import PacketTypes

from lantern.mqtt.packets import (
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Will,
)
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode
from mqtt_interop.harness import (
    TOPICS,
    WAIT,
    PahoClient,
    ServerThread,
    paho_props,
)
from mqtt_interop.raw import RawClient

PahoFactory = Callable[..., PahoClient]
RawFactory = Callable[..., RawClient]
ServerFactory = Callable[..., ServerThread]


def alias(n: int) -> Properties:
    return Properties(topic_alias=n)


# -- topic aliases -----------------------------------------------------------------------


def test_client_topic_alias_zero_is_invalid(raw_client: RawFactory) -> None:
    c = raw_client()
    c.connect("myclientid")
    c.publish(TOPICS[0], b"topic alias 0", 1, packet_id=1, properties=alias(0), complete=False)
    assert c.until_closed() == [Disconnect(ReasonCode.TOPIC_ALIAS_INVALID)]  # [MQTT-3.3.2-8]


def test_client_topic_alias_above_the_advertised_maximum_is_invalid(
    raw_client: RawFactory,
) -> None:
    c = raw_client()
    maximum = c.connect("myclientid").properties.topic_alias_maximum
    assert maximum is not None and maximum > 0  # the server accepts aliases
    c.publish(TOPICS[0], b"x", 1, packet_id=1, properties=alias(maximum + 1), complete=False)
    assert c.until_closed() == [Disconnect(ReasonCode.TOPIC_ALIAS_INVALID)]  # [MQTT-3.2.2-17]


def test_client_topic_aliases_are_resolved_and_forgotten_with_the_connection(
    paho_client: PahoFactory, raw_client: RawFactory
) -> None:
    sub = paho_client("sub")
    sub.connect()
    sub.subscribe("#", 1)
    c = raw_client()
    c.connect("myclientid", properties=Properties(session_expiry_interval=99999))
    c.publish(TOPICS[0], b"topic alias 1", 1, packet_id=1, properties=alias(1))
    c.publish("", b"topic alias 2", 1, packet_id=2, properties=alias(1))
    c.publish(TOPICS[1], b"alias 1 remapped", 0, properties=alias(1))
    c.publish("", b"topic alias 3", 2, packet_id=3, properties=alias(1))
    got = sub.expect_n(4)
    assert [(m.topic, m.payload) for m in got] == [
        (TOPICS[0], b"topic alias 1"),
        (TOPICS[0], b"topic alias 2"),
        (TOPICS[1], b"alias 1 remapped"),
        (TOPICS[1], b"topic alias 3"),
    ]
    for m in got:  # the alias is hop-by-hop: never forwarded
        assert not hasattr(m.properties, "TopicAlias")
    c.disconnect()

    # [MQTT-3.3.2-7]: aliases do not survive the network connection, even with the session.
    c = raw_client()
    assert c.connect(
        "myclientid", clean_start=False, properties=Properties(session_expiry_interval=99999)
    ).session_present
    c.publish(TOPICS[0], b"topic alias 4", 1, packet_id=4)
    c.publish("", b"unknown alias", 1, packet_id=5, properties=alias(1), complete=False)
    assert c.until_closed() == [Disconnect(ReasonCode.PROTOCOL_ERROR)]
    assert sub.expect().payload == b"topic alias 4"
    sub.expect_none()


def resolve(publishes: list[Publish], maximum: int) -> list[str]:
    """The topics a compliant client reads from these PUBLISHes (checking the alias rules)."""
    aliases: dict[int, str] = {}
    topics = []
    for p in publishes:
        n = p.properties.topic_alias
        if n is None:
            assert p.topic, p
            topics.append(p.topic)
            continue
        assert 1 <= n <= maximum, p  # [MQTT-3.1.2-26]
        if p.topic:
            aliases[n] = p.topic
        assert n in aliases, f"alias {n} used before it was set: {p}"
        topics.append(aliases[n])
    return topics


def test_server_topic_aliases(raw_client: RawFactory) -> None:
    pub = raw_client()
    pub.connect("pub")
    c = raw_client()
    c.connect("myclientid", properties=Properties(topic_alias_maximum=1))
    c.subscribe(TOPICS[0], 2)
    c.subscribe(TOPICS[1], 2, packet_id=2)
    for qos in range(3):
        pub.publish(TOPICS[0], b"topic alias 1", qos, packet_id=qos or None)
    got = [c.expect(Publish) for _ in range(3)]
    for p in got:
        c.ack(p)
    # What the paho suite checks: the first PUBLISH sets an alias, the next ones use it with an
    # empty topic name.
    assert got[0].topic == TOPICS[0] and got[0].properties.topic_alias == 1, got[0]
    assert [(p.topic, p.properties.topic_alias) for p in got[1:]] == [("", 1), ("", 1)]
    # More topics than aliases: whatever the server does must still resolve correctly.
    for topic in (TOPICS[1], TOPICS[0], TOPICS[1]):
        pub.publish(topic, b"mixed", 0)
    more = [c.expect(Publish) for _ in range(3)]
    assert resolve(got + more, 1) == [TOPICS[0]] * 3 + [TOPICS[1], TOPICS[0], TOPICS[1]]


def test_no_server_topic_aliases_unless_the_client_allows_them(raw_client: RawFactory) -> None:
    # [MQTT-3.1.2-27]: Topic Alias Maximum absent or 0 -> the server sends no alias.
    pub = raw_client()
    pub.connect("pub")
    for props in (Properties(), Properties(topic_alias_maximum=0)):
        c = raw_client()
        c.connect("myclientid", properties=props)
        c.subscribe(TOPICS[0], 2)
        for qos in range(3):
            pub.publish(TOPICS[0], b"topic alias 1", qos, packet_id=qos or None)
        for _ in range(3):
            p = c.expect(Publish)
            assert (p.topic, p.properties.topic_alias) == (TOPICS[0], None), p
            c.ack(p)
        c.disconnect()


# -- maximum packet size -----------------------------------------------------------------


def test_server_maximum_packet_size(make_server: ServerFactory) -> None:
    server = make_server(max_packet_size=1024)
    c = RawClient.open(server.tcp_port)
    try:
        assert c.connect("myclientid").properties.maximum_packet_size == 1024
        # Exactly at the limit is fine: 3 (fixed header, 2-byte remaining length) + 8 (topic)
        # + 2 (packet id) + 1 (no properties) + 1010 (payload) = 1024.
        c.publish(TOPICS[0], b"." * 1010, 1, packet_id=1)
        c.publish(TOPICS[0], b"." * 1011, 1, packet_id=2, complete=False)
        # One byte over: DISCONNECT 0x95 ([MQTT-3.2.2-15] and 4.13).
        assert c.until_closed() == [Disconnect(ReasonCode.PACKET_TOO_LARGE)]
    finally:
        c.close()


def test_client_maximum_packet_size(paho_client: PahoFactory) -> None:
    # [MQTT-3.1.2-24/25]: the server must not send a packet larger than the client's Maximum
    # Packet Size; it drops that message (as if delivered) and goes on.
    a = paho_client("myclientid")
    a.connect(properties=paho_props(PacketTypes.CONNECT, MaximumPacketSize=64))
    a.subscribe(TOPICS[0], 2)
    a.publish(TOPICS[0], b"." * 32, 0)
    assert a.expect().payload == b"." * 32
    a.publish(TOPICS[0], b"." * 64, 1)
    a.publish(TOPICS[0], b"small after", 1)
    assert a.expect().payload == b"small after"
    a.expect_none()


def test_client_maximum_packet_size_does_not_stall_the_window(raw_client: RawFactory) -> None:
    # Dropped oversize QoS 1 messages must not keep Receive Maximum slots.
    pub = raw_client()
    pub.connect("pub")
    c = raw_client()
    c.connect("myclientid", properties=Properties(maximum_packet_size=64, receive_maximum=1))
    c.subscribe(TOPICS[0], 1)
    for i in range(3):
        pub.publish(TOPICS[0], b"." * 100, 1, packet_id=i + 1)
    pub.publish(TOPICS[0], b"fits", 1, packet_id=4)
    p = c.expect(Publish)
    assert p.payload == b"fits"


# -- keep alive --------------------------------------------------------------------------


def test_server_keep_alive(make_server: ServerFactory) -> None:
    # The paho suite's broker caps keep alive at 60 s and says so in CONNACK Server Keep Alive
    # ([MQTT-3.2.2-21]); the client must then use that value.
    server = make_server(keepalive_max=60)
    for asked, told in ((120, 60), (0, 60), (30, None)):
        c = RawClient.open(server.tcp_port)
        try:
            connack = c.connect("myclientid", keep_alive=asked)
            assert connack.properties.server_keep_alive == told, (asked, connack)
        finally:
            c.close()


def test_server_keep_alive_is_enforced(make_server: ServerFactory) -> None:
    server = make_server(keepalive_max=1)
    c = RawClient.open(server.tcp_port)
    try:
        assert c.connect("myclientid", keep_alive=0).properties.server_keep_alive == 1
        start = time.monotonic()
        assert c.until_closed() == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]
        assert 1.0 <= time.monotonic() - start <= 3.0
    finally:
        c.close()


# -- flow control ------------------------------------------------------------------------


def test_flow_control_client_receive_maximum(raw_client: RawFactory) -> None:
    # [MQTT-3.3.4-9]: no more unacknowledged QoS 1/2 PUBLISHes than the client's Receive Maximum.
    c = raw_client()
    c.connect("myclientid", properties=Properties(receive_maximum=2))
    c.subscribe(TOPICS[0], 2)
    pub = raw_client()
    pub.connect("pub")
    for i in range(1, 4):
        pub.publish(TOPICS[0], f"message {i}".encode(), 1, packet_id=i)
    first, second = c.expect(Publish), c.expect(Publish)
    assert (first.qos, second.qos) == (1, 1)
    c.nothing_for()  # the window is full
    c.ack(first)
    third = c.expect(Publish)
    assert [p.payload for p in (first, second, third)] == [
        b"message 1",
        b"message 2",
        b"message 3",
    ]
    c.ack(second)
    c.ack(third)
    c.nothing_for()


def test_flow_control_qos2_slot_is_freed_by_pubcomp_not_pubrec(raw_client: RawFactory) -> None:
    c = raw_client()
    c.connect("myclientid", properties=Properties(receive_maximum=1))
    c.subscribe(TOPICS[0], 2)
    pub = raw_client()
    pub.connect("pub")
    pub.publish(TOPICS[0], b"one", 2, packet_id=1)
    pub.publish(TOPICS[0], b"two", 2, packet_id=2)
    first = c.expect(Publish)
    assert first.packet_id is not None
    c.send(Pubrec(first.packet_id))
    assert c.expect(Pubrel).packet_id == first.packet_id
    c.nothing_for()  # still in flight until PUBCOMP (4.9)
    c.send(Pubcomp(first.packet_id))
    assert c.expect(Publish).payload == b"two"


def test_flow_control_server_receive_maximum(make_server: ServerFactory) -> None:
    # One QoS 2 PUBLISH more than the server's Receive Maximum: DISCONNECT 0x93.
    server = make_server(receive_maximum=3)
    c = RawClient.open(server.tcp_port)
    try:
        assert c.connect("myclientid").properties.receive_maximum == 3
        for pid in (1, 2, 3):
            c.publish(TOPICS[0], b"x", 2, packet_id=pid, complete=False)
            assert c.expect(Pubrec).packet_id == pid
        c.publish(TOPICS[0], b"x", 2, packet_id=4, complete=False)
        assert c.until_closed() == [Disconnect(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED)]
    finally:
        c.close()


def test_flow_control_server_window_reopens_after_pubrel(make_server: ServerFactory) -> None:
    server = make_server(receive_maximum=1)
    c = RawClient.open(server.tcp_port)
    try:
        c.connect("myclientid")
        for pid in range(1, 5):  # each completed exchange frees the slot
            c.publish(TOPICS[0], b"x", 2, packet_id=pid)
            c.publish(TOPICS[0], b"y", 1, packet_id=pid + 10, complete=False)
            assert c.expect(Puback).packet_id == pid + 10
    finally:
        c.close()


# -- will delay --------------------------------------------------------------------------


def will_after_kill(
    paho_client: PahoFactory,
    raw_client: RawFactory,
    will_delay: int,
    session_expiry: int,
) -> float:
    """Seconds from dropping a will-bearing connection to its will's arrival."""
    b = paho_client(f"watcher-{will_delay}-{session_expiry}")
    b.connect()
    b.subscribe(TOPICS[0], 2)
    a = raw_client()
    a.connect(
        "myclientid",
        properties=Properties(session_expiry_interval=session_expiry),
        will=Will(
            TOPICS[0],
            b"test_will_delay will message",
            properties=Properties(will_delay_interval=will_delay),
        ),
    )
    a.kill()
    start = time.monotonic()
    got = b.expect(timeout=will_delay + WAIT)
    elapsed = time.monotonic() - start
    assert (got.topic, got.payload) == (TOPICS[0], b"test_will_delay will message")
    assert not hasattr(got.properties, "WillDelayInterval")
    b.stop()
    return elapsed


def test_will_delay_interval(paho_client: PahoFactory, raw_client: RawFactory) -> None:
    # [MQTT-3.1.3-9]: the will waits for the will delay or the end of the session, whichever
    # comes first.
    assert 0.8 <= will_after_kill(paho_client, raw_client, 1, 5) <= 2.5
    assert 0.8 <= will_after_kill(paho_client, raw_client, 5, 1) <= 2.5
    assert will_after_kill(paho_client, raw_client, 5, 0) <= 0.7


def test_will_delay_reconnect_in_time_cancels_the_will(
    paho_client: PahoFactory, raw_client: RawFactory
) -> None:
    b = paho_client("watcher")
    b.connect()
    b.subscribe(TOPICS[0], 2)
    a = raw_client()
    session = Properties(session_expiry_interval=10)
    a.connect(
        "myclientid",
        properties=session,
        will=Will(TOPICS[0], b"too early", properties=Properties(will_delay_interval=1)),
    )
    a.kill()
    again = raw_client()
    assert again.connect("myclientid", clean_start=False, properties=session).session_present
    b.expect_none(1.3)  # past the will delay: the will was cancelled by the reconnection


def test_session_takeover_with_will_delay_keeps_the_will(
    paho_client: PahoFactory, raw_client: RawFactory
) -> None:
    # Takeover resuming the session: old will with a delay is not sent ([MQTT-3.1.3-9]); a
    # takeover with Clean Start ends the session, so the will goes out at once.
    b = paho_client("watcher")
    b.connect()
    b.subscribe(TOPICS[0], 2)
    session = Properties(session_expiry_interval=10)
    will = Will(TOPICS[0], b"old will", properties=Properties(will_delay_interval=5))
    old = raw_client()
    old.connect("myclientid", properties=session, will=will)
    new = raw_client()
    assert new.connect("myclientid", clean_start=False, properties=session).session_present
    assert old.until_closed() == [Disconnect(ReasonCode.SESSION_TAKEN_OVER)]
    b.expect_none()

    newer = raw_client()
    newer.connect("myclientid", properties=session, will=will)  # takes over `new`
    newest = raw_client()
    newest.connect("myclientid", clean_start=True, properties=session)
    assert b.expect().payload == b"old will"


def test_session_takeover_without_will_delay_publishes_the_will(
    paho_client: PahoFactory, raw_client: RawFactory
) -> None:
    b = paho_client("watcher")
    b.connect()
    b.subscribe(TOPICS[0], 2)
    old = raw_client()
    old.connect("myclientid", will=Will(TOPICS[0], b"old will"))
    new = raw_client()
    new.connect("myclientid")
    assert old.until_closed() == [Disconnect(ReasonCode.SESSION_TAKEN_OVER)]
    assert b.expect().payload == b"old will"


# -- protocol level ----------------------------------------------------------------------


def test_unsupported_protocol_level_gets_connack_0x84(server: ServerThread) -> None:
    # [MQTT-3.1.2-2]: CONNACK 0x84 (or 3.1.1 return code 1), then close.
    body = b"\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x02id"
    sock = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=WAIT)
    try:
        sock.sendall(bytes([0x10, len(body)]) + body)
        data = b""
        while chunk := sock.recv(100):
            data += chunk
    finally:
        sock.close()
    assert data in (b"\x20\x02\x00\x01", b"\x20\x03\x00\x84\x00"), data
