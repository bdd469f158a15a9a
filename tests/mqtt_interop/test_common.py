"""The scenarios of the Eclipse Paho interoperability suite (client_test.py for 3.1.1,
client_test5.py for 5.0) that apply to both protocol levels, run at both levels over the plain
TCP listener with the suite's topic set. Where paho hides the wire (a second CONNECT, a silent
client, unacknowledged deliveries) a raw codec-level client is used instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from lantern.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Will,
)
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode
from mqtt_interop.harness import (
    NOSUBSCRIBE,
    TOPICS,
    WILDTOPICS,
    Message,
    PahoClient,
    paho_props,
)
from mqtt_interop.raw import RawClient

PahoFactory = Callable[..., PahoClient]
RawFactory = Callable[..., RawClient]
USER_PROPS = [("a", "2"), ("c", "3")]
LEVELS = pytest.mark.parametrize("level", [4, 5], ids=["v311", "v5"])


def persistent(level: int) -> Properties:
    """CONNECT properties of a session that outlives the connection (3.1.1: clean session 0)."""
    return Properties(session_expiry_interval=99999) if level == 5 else Properties()


def paho_persistent(level: int) -> PahoProperties | None:
    """paho CONNECT properties of a persistent MQTT 5 session (None for 3.1.1)."""
    if level != 5:
        return None
    return paho_props(PacketTypes.CONNECT, SessionExpiryInterval=99999)


def collect(client: PahoClient, n: int) -> list[Message]:
    """``n`` messages, then proof that no more arrive."""
    got = client.expect_n(n)
    client.expect_none()
    return got


@LEVELS
def test_basic_publish_subscribe_qos_0_1_2(paho_client: PahoFactory, level: int) -> None:
    a = paho_client("myclientid", level)
    a.connect()
    a.disconnect()
    connack = a.connect()
    assert connack.session_present is False  # clean session / clean start
    assert a.subscribe(TOPICS[0], 2) == [2]
    for qos in (0, 1, 2):
        assert a.publish(TOPICS[0], f"qos {qos}".encode(), qos) == 0
    got = collect(a, 3)
    assert sorted((m.topic, m.payload, m.qos, m.retain) for m in got) == [
        (TOPICS[0], b"qos 0", 0, False),
        (TOPICS[0], b"qos 1", 1, False),
        (TOPICS[0], b"qos 2", 2, False),
    ]


@LEVELS
def test_second_connect_on_a_connection_is_a_protocol_violation(
    raw_client: RawFactory, level: int
) -> None:
    # [MQTT-3.1.0-2]: a second CONNECT is a protocol violation; the server disconnects
    # (MQTT 5: DISCONNECT 0x82 Protocol Error first).
    c = raw_client(level)
    c.connect("myclientid")
    c.send(Connect("myclientid", level))
    packets = c.until_closed()
    if level == 5:
        assert packets == [Disconnect(ReasonCode.PROTOCOL_ERROR)]
    else:
        assert packets == []


@LEVELS
def test_wrong_protocol_name_is_refused(raw_client: RawFactory, level: int) -> None:
    # [MQTT-3.1.2-1]: the server must not go on as MQTT; it may answer CONNACK 0x84 (MQTT 5) /
    # return code 1 (3.1.1) and must close. What it must never do is accept.
    c = raw_client(level)
    c.send(Connect("myclientid", level, protocol_name="hj"))
    packets = c.until_closed()
    assert all(isinstance(p, Connack) and p.reason_code >= 0x80 for p in packets), packets


@LEVELS
def test_retained_messages_and_their_deletion(paho_client: PahoFactory, level: int) -> None:
    props = {"UserProperty": USER_PROPS} if level == 5 else {}
    live = paho_client("live", level)
    live.connect()
    live.subscribe(WILDTOPICS[5], 2)
    a = paho_client("myclientid", level)
    a.connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        a.publish(topic, f"qos {qos}".encode(), qos, retain=True, **props)
    # [MQTT-3.3.1-9] (3.1.1) / retain as published off (5.0): live copies carry RETAIN 0.
    assert {(m.topic, m.retain) for m in collect(live, 3)} == {(t, False) for t in TOPICS[1:4]}

    assert a.subscribe(WILDTOPICS[5], 2) == [2]
    got = collect(a, 3)
    assert sorted((m.topic, m.payload, m.qos, m.retain) for m in got) == sorted(
        [
            (TOPICS[1], b"qos 0", 0, True),
            (TOPICS[2], b"qos 1", 1, True),
            (TOPICS[3], b"qos 2", 2, True),
        ]
    )
    if level == 5:  # [MQTT-3.3.2-17/18]: user properties kept, in order
        assert [m.properties.UserProperty for m in got] == [USER_PROPS] * 3

    # [MQTT-3.3.1-10/11]: a retained PUBLISH with an empty payload deletes the retained message.
    for qos, topic in enumerate(TOPICS[1:4]):
        a.publish(topic, b"", qos, retain=True)
    # ...and is itself delivered to current subscribers, then not stored.
    assert {(m.topic, m.payload) for m in collect(live, 3)} == {(t, b"") for t in TOPICS[1:4]}
    collect(a, 3)
    assert a.subscribe(WILDTOPICS[5], 2) == [2]
    a.expect_none()
    b = paho_client("fresh", level)
    b.connect()
    b.subscribe("#", 2)
    b.expect_none()


@LEVELS
def test_will_message_on_abnormal_disconnect(
    paho_client: PahoFactory, raw_client: RawFactory, level: int
) -> None:
    b = paho_client("myclientid2", level)
    b.connect()
    assert b.subscribe(TOPICS[2], 2) == [2]
    will_props = Properties(user_properties=tuple(USER_PROPS)) if level == 5 else Properties()
    a = raw_client(level)
    a.connect(
        "myclientid",
        keep_alive=2,
        will=Will(TOPICS[2], b"client not disconnected", 1, False, will_props),
    )
    a.kill()
    got = b.expect()
    assert (got.topic, got.payload, got.qos, got.retain) == (
        TOPICS[2],
        b"client not disconnected",
        1,
        False,
    )
    if level == 5:
        assert got.properties.UserProperty == USER_PROPS
    b.expect_none()


@LEVELS
def test_no_will_after_a_normal_disconnect(
    paho_client: PahoFactory, raw_client: RawFactory, level: int
) -> None:
    # [MQTT-3.1.2-10] / [MQTT-3.14.4-3]: DISCONNECT (0x00) deletes the will.
    b = paho_client("watcher", level)
    b.connect()
    b.subscribe(TOPICS[2], 2)
    a = raw_client(level)
    a.connect("myclientid", will=Will(TOPICS[2], b"will"))
    a.disconnect()
    b.expect_none()
    if level == 5:
        # 0x04 Disconnect with Will Message: the will is published.
        c = raw_client(level)
        c.connect("other", will=Will(TOPICS[2], b"will 0x04"))
        c.disconnect(ReasonCode.DISCONNECT_WITH_WILL)
        assert b.expect().payload == b"will 0x04"


def test_zero_length_client_id_v311(paho_client: PahoFactory, raw_client: RawFactory) -> None:
    # [MQTT-3.1.3-8]: an empty client id with clean session 0 gets return code 2, then close.
    c = raw_client(4)
    c.send(Connect("", 4, clean_start=False))
    packets = c.until_closed()
    assert packets == [Connack(False, ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)], packets
    # [MQTT-3.1.3-6/7]: with clean session 1 the server accepts it and assigns an id.
    client0 = paho_client("", 4)
    assert client0.connect().session_present is False


def test_zero_length_client_id_v5(paho_client: PahoFactory) -> None:
    # MQTT 5 allows it with either clean start; [MQTT-3.2.2-16] the CONNACK must carry the
    # Assigned Client Identifier.
    seen = set()
    for clean in (False, True):
        client0 = paho_client("", 5)
        connack = client0.connect(clean_start=clean)
        assigned = getattr(connack.properties, "AssignedClientIdentifier", "")
        assert assigned, connack
        seen.add(assigned)
        client0.stop()
    assert len(seen) == 2  # two different clients, two different ids


@LEVELS
def test_offline_message_queueing(paho_client: PahoFactory, level: int) -> None:
    a = paho_client("myclientid", level, clean_session=False)
    a.connect(clean_start=True, properties=paho_persistent(level))
    assert a.subscribe(WILDTOPICS[5], 2) == [2]
    a.disconnect()

    b = paho_client("myclientid2", level)
    b.connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        b.publish(topic, f"qos {qos}".encode(), qos)
    b.disconnect()

    connack = a.connect(clean_start=False)
    assert connack.session_present is True
    got = a.expect_n(2)
    extra = a.maybe()  # queueing QoS 0 for offline clients is optional
    if extra is not None:
        got.append(extra)
    a.expect_none()
    kept = {(m.topic, m.payload, m.qos) for m in got}
    assert {(TOPICS[2], b"qos 1", 1), (TOPICS[3], b"qos 2", 2)} <= kept, got
    assert kept <= {
        (TOPICS[1], b"qos 0", 0),
        (TOPICS[2], b"qos 1", 1),
        (TOPICS[3], b"qos 2", 2),
    }


@LEVELS
def test_overlapping_subscriptions(paho_client: PahoFactory, level: int) -> None:
    # One copy at the highest QoS of the matching subscriptions, or one copy per subscription
    # ([MQTT-3.3.5-1] 3.1.1, [MQTT-3.3.4-2] 5.0).
    a = paho_client("myclientid", level)
    a.connect()
    assert a.subscribe(WILDTOPICS[6], 2) == [2]
    assert a.subscribe(WILDTOPICS[0], 1) == [1]
    a.publish(TOPICS[3], b"overlapping topic filters", 2)
    got = [a.expect()]
    extra = a.maybe()
    if extra is not None:
        got.append(extra)
    a.expect_none()
    qoss = sorted(m.qos for m in got)
    assert qoss in ([2], [1, 2]), got


@LEVELS
def test_keepalive_timeout_disconnects_and_publishes_the_will(
    paho_client: PahoFactory, raw_client: RawFactory, level: int
) -> None:
    b = paho_client("myclientid2", level)
    b.connect(keepalive=0)
    b.subscribe(TOPICS[4], 2)
    a = raw_client(level)
    a.connect("myclientid", keep_alive=1, will=Will(TOPICS[4], b"keepalive expiry"))
    start = time.monotonic()
    packets = a.until_closed(timeout=4.0)
    elapsed = time.monotonic() - start
    # [MQTT-3.1.2-24]: disconnect after 1.5 x keep alive of silence, not before keep alive.
    assert 1.0 <= elapsed <= 3.0, elapsed
    if level == 5:
        assert packets == [Disconnect(ReasonCode.KEEP_ALIVE_TIMEOUT)]
    else:
        assert packets == []
    got = b.expect()
    assert (got.topic, got.payload) == (TOPICS[4], b"keepalive expiry")


@LEVELS
def test_pings_keep_the_connection_alive(raw_client: RawFactory, level: int) -> None:
    a = raw_client(level)
    a.connect("pinger", keep_alive=1)
    for _ in range(4):  # 1.6 s in all, longer than 1.5 x keep alive
        a.nothing_for(0.4)
        a.send(Pingreq())
        assert a.recv() == Pingresp()


@LEVELS
def test_redelivery_on_reconnect(raw_client: RawFactory, level: int) -> None:
    # [MQTT-4.4.0-1]: on resuming a session the server resends unacknowledged PUBLISH packets
    # with their original packet ids and DUP=1 ([MQTT-3.3.1-1]), in order, and unacknowledged
    # PUBREL packets.
    b = raw_client(level)
    b.connect("myclientid2", clean_start=False, properties=persistent(level))
    assert b.subscribe(WILDTOPICS[6], 2).reason_codes == (ReasonCode.GRANTED_QOS_2,)
    a = raw_client(level)
    a.connect("myclientid")
    a.publish(TOPICS[1], b"qos 1", 1, packet_id=1)
    a.publish(TOPICS[3], b"qos 2", 2, packet_id=2)
    first = [b.expect(Publish), b.expect(Publish)]
    assert [(p.topic, p.qos, p.dup) for p in first] == [
        (TOPICS[1], 1, False),
        (TOPICS[3], 2, False),
    ]
    b.close()  # no acks, no DISCONNECT

    b = raw_client(level)
    assert b.connect("myclientid2", clean_start=False, properties=persistent(level)).session_present
    again = [b.expect(Publish), b.expect(Publish)]
    assert [(p.topic, p.payload, p.qos, p.dup, p.packet_id) for p in again] == [
        (p.topic, p.payload, p.qos, True, p.packet_id) for p in first
    ]
    for p in again:
        b.ack(p)
    b.nothing_for()

    # A QoS 2 delivery that got its PUBREC: the PUBREL is what is resent.
    a.publish(TOPICS[3], b"qos 2 again", 2, packet_id=3)
    p = b.expect(Publish)
    assert p.packet_id is not None
    b.send(Pubrec(p.packet_id))
    assert b.expect(Pubrel).packet_id == p.packet_id
    b.close()
    b = raw_client(level)
    assert b.connect("myclientid2", clean_start=False, properties=persistent(level)).session_present
    assert b.expect(Pubrel).packet_id == p.packet_id
    b.send(Pubcomp(p.packet_id))
    b.nothing_for()


@LEVELS
def test_subscribe_failure(paho_client: PahoFactory, level: int) -> None:
    # The suite's "test/nosubscribe" is refused by the authorizer: SUBACK 0x80 (3.1.1,
    # [MQTT-3.9.3-2]); MQTT 5 says why: 0x87 Not authorized.
    a = paho_client("myclientid", level)
    a.connect()
    assert a.subscribe(NOSUBSCRIBE, 2) == [0x80 if level == 4 else 0x87]
    b = paho_client("publisher", level)
    b.connect()
    b.publish(NOSUBSCRIBE, b"nobody listens", 1)
    a.expect_none()


@LEVELS
def test_dollar_topics_are_not_matched_by_leading_wildcards(
    paho_client: PahoFactory, level: int
) -> None:
    # [MQTT-4.7.2-1]: '#' and '+' as the first level do not match topics starting with '$'.
    b = paho_client("myclientid2", level)
    b.connect(keepalive=0)
    b.subscribe(WILDTOPICS[5], 2)
    b.subscribe("#", 2)
    b.publish("$" + TOPICS[1], b"", 1)
    b.expect_none()
    b.subscribe("$TopicA/+", 1)
    b.publish("$" + TOPICS[1], b"dollar", 1)
    got = b.expect()
    assert (got.topic, got.payload) == ("$" + TOPICS[1], b"dollar")
    b.expect_none()


@LEVELS
def test_unsubscribe(paho_client: PahoFactory, level: int) -> None:
    b = paho_client("myclientid2", level)
    b.connect()
    for topic in TOPICS[:3]:
        assert b.subscribe(topic, 2) == [2]
    codes = b.unsubscribe(TOPICS[0])
    if level == 5:
        assert codes == [0x00]
        assert b.unsubscribe(TOPICS[0]) == [0x11]  # No subscription existed
    a = paho_client("myclientid", level)
    a.connect()
    for topic in TOPICS[:3]:
        a.publish(topic, f"to {topic}".encode(), 1)
    assert sorted(m.topic for m in collect(b, 2)) == sorted(TOPICS[1:3])


@LEVELS
def test_exactly_once_a_resent_qos2_publish_is_not_delivered_twice(
    paho_client: PahoFactory, raw_client: RawFactory, level: int
) -> None:
    # [MQTT-4.3.3-10] (5.0) / method B of 4.3.3 (3.1.1): until PUBREL, a PUBLISH with the same
    # packet id (DUP=1) is the same message and must not be routed again.
    sub = paho_client("sub", level)
    sub.connect()
    sub.subscribe(TOPICS[0], 2)
    pub = raw_client(level)
    pub.connect("pub")
    pub.publish(TOPICS[0], b"once", 2, packet_id=7, complete=False)
    assert pub.expect(Pubrec).packet_id == 7
    pub.publish(TOPICS[0], b"once", 2, packet_id=7, dup=True, complete=False)
    assert pub.expect(Pubrec).packet_id == 7
    pub.send(Pubrel(7))
    assert pub.expect(Pubcomp) == Pubcomp(7)
    assert sub.expect().payload == b"once"
    sub.expect_none()


@LEVELS
def test_session_taken_over_by_a_second_connection(raw_client: RawFactory, level: int) -> None:
    # [MQTT-3.1.4-3]: the existing connection with the same client id is closed; MQTT 5 sends it
    # DISCONNECT 0x8E Session taken over first.
    old = raw_client(level)
    old.connect("twin")
    new = raw_client(level)
    new.connect("twin")
    packets = old.until_closed()
    assert packets == ([Disconnect(ReasonCode.SESSION_TAKEN_OVER)] if level == 5 else [])
    new.send(Pingreq())
    assert new.recv() == Pingresp()
