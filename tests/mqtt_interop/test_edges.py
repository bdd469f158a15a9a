"""Edges next to the paho suite's scenarios that conformance runs commonly trip on: server
shutdown, stray PUBREL, re-subscribing, retained wills, resuming into a small Receive Maximum,
shared-subscription unsubscribe."""

from __future__ import annotations

from collections.abc import Callable

from lantern.mqtt.packets import Disconnect, Pubcomp, Publish, Pubrel, Unsuback, Unsubscribe, Will
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode
from mqtt_interop.harness import TOPICS, PahoClient, ServerThread
from mqtt_interop.raw import RawClient

PahoFactory = Callable[..., PahoClient]
RawFactory = Callable[..., RawClient]


def test_server_shutdown_sends_disconnect_0x8b(
    server: ServerThread, raw_client: RawFactory
) -> None:
    v5 = raw_client(5)
    v5.connect("five")
    v311 = raw_client(4)
    v311.connect("three")
    server.run(server.server.stop())
    assert v5.until_closed() == [Disconnect(ReasonCode.SERVER_SHUTTING_DOWN)]
    assert v311.until_closed() == []


def test_pubrel_for_an_unknown_packet_id(raw_client: RawFactory) -> None:
    # MQTT 5: PUBCOMP 0x92 Packet Identifier not found; the connection stays up.
    c = raw_client()
    c.connect("myclientid")
    c.send(Pubrel(42))
    assert c.expect(Pubcomp) == Pubcomp(42, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND)
    c.subscribe(TOPICS[0], 0)
    c.publish(TOPICS[0], b"alive", 0)
    assert c.expect(Publish).payload == b"alive"


def test_resubscribing_replaces_the_subscription(paho_client: PahoFactory) -> None:
    # [MQTT-3.8.4-3]: same filter again replaces the subscription (new QoS, new identifier);
    # there is still only one, so one copy per message.
    a = paho_client("myclientid")
    a.connect()
    a.subscribe(TOPICS[0], 2, sub_id=1)
    a.subscribe(TOPICS[0], 1, sub_id=2)
    a.publish(TOPICS[0], b"x", 2)
    got = a.expect()
    a.expect_none()
    assert (got.qos, got.properties.SubscriptionIdentifier) == (1, [2])


def test_retained_will(paho_client: PahoFactory, raw_client: RawFactory) -> None:
    a = raw_client()
    a.connect("myclientid", will=Will(TOPICS[2], b"last words", 1, True))
    a.kill()
    watcher = paho_client("watcher")
    watcher.connect()
    watcher.subscribe(TOPICS[2], 1)  # may subscribe before or after the will went out
    got = watcher.expect()
    assert (got.topic, got.payload) == (TOPICS[2], b"last words")
    late = paho_client("late")
    late.connect()
    late.subscribe(TOPICS[2], 1)
    got = late.expect()
    assert (got.payload, got.retain) == (b"last words", True)


def test_resume_delivers_the_queue_within_receive_maximum(raw_client: RawFactory) -> None:
    session = Properties(session_expiry_interval=600)
    c = raw_client()
    c.connect("myclientid", properties=session)
    c.subscribe(TOPICS[0], 1)
    c.disconnect()
    pub = raw_client()
    pub.connect("pub")
    for i in range(5):
        pub.publish(TOPICS[0], f"m{i}".encode(), 1, packet_id=i + 1)
    c = raw_client()
    resumed = Properties(session_expiry_interval=600, receive_maximum=2)
    assert c.connect("myclientid", clean_start=False, properties=resumed).session_present
    got: list[Publish] = []
    while len(got) < 5:  # windows of 2, 2, 1
        window = [c.expect(Publish)]
        if len(got) + 1 < 5:
            window.append(c.expect(Publish))
        c.nothing_for(0.1)  # never more than 2 unacknowledged
        for p in window:
            c.ack(p)
        got.extend(window)
    assert [p.payload for p in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_unsubscribe_from_a_shared_subscription(
    paho_client: PahoFactory, raw_client: RawFactory
) -> None:
    c = raw_client()
    c.connect("myclientid")
    c.subscribe("$share/g/" + TOPICS[0], 1)
    c.send(Unsubscribe(2, ("$share/g/" + TOPICS[0],)))
    assert c.expect(Unsuback).reason_codes == (ReasonCode.SUCCESS,)
    pub = paho_client("pub")
    pub.connect()
    pub.publish(TOPICS[0], b"nobody", 1)
    c.nothing_for()
