"""Topic matching over the paho suite's topic set, and session bookkeeping the suite relies on:
every wildcard filter against every topic; clean session discarding a stored session; the
bounded offline queue and its documented drop policy (the newest message is dropped)."""

from __future__ import annotations

from collections.abc import Callable

from paho.mqtt.packettypes import PacketTypes

from mqtt_interop.harness import TOPICS, WILDTOPICS, PahoClient, ServerThread, paho_props

PahoFactory = Callable[..., PahoClient]

# Which of TOPICS each of WILDTOPICS matches ([MQTT-4.7.1-1..3]: '#' also matches the parent
# level, '+' matches an empty level, e.g. the one before "/TopicA").
EXPECTED = {
    "TopicA/+": {"TopicA/B", "TopicA/C"},
    "+/C": {"Topic/C", "TopicA/C"},
    "#": set(TOPICS),
    "/#": {"/TopicA"},
    "/+": {"/TopicA"},
    "+/+": {"TopicA/B", "Topic/C", "TopicA/C", "/TopicA"},
    "TopicA/#": {"TopicA", "TopicA/B", "TopicA/C"},
}


def test_wildcard_matrix_v5_by_subscription_identifier(paho_client: PahoFactory) -> None:
    sub = paho_client("matcher")
    sub.connect()
    for n, flt in enumerate(WILDTOPICS, start=1):
        sub.subscribe(flt, 1, sub_id=n)
    pub = paho_client("pub")
    pub.connect()
    matched: dict[str, set[str]] = {flt: set() for flt in WILDTOPICS}
    for topic in TOPICS:
        pub.publish(topic, topic.encode(), 1)
        got = sub.expect()
        extra = sub.maybe(0.05)
        assert extra is None, f"{topic}: a second copy {extra}"
        assert got.topic == topic
        for n in got.properties.SubscriptionIdentifier:
            matched[WILDTOPICS[n - 1]].add(topic)
    assert matched == EXPECTED


def test_wildcard_matrix_v311(paho_client: PahoFactory) -> None:
    subs = {}
    for n, flt in enumerate(WILDTOPICS):
        subs[flt] = paho_client(f"matcher{n}", 4)
        subs[flt].connect()
        assert subs[flt].subscribe(flt, 1) == [1]
    pub = paho_client("pub", 4)
    pub.connect()
    for topic in TOPICS:
        pub.publish(topic, topic.encode(), 1)
    for flt, client in subs.items():
        got = client.expect_n(len(EXPECTED[flt]))
        assert {m.topic for m in got} == EXPECTED[flt], flt
    for client in subs.values():
        client.expect_none(0.05)


def test_clean_session_discards_the_stored_session_v311(paho_client: PahoFactory) -> None:
    # [MQTT-3.1.2-6]: clean session 1 discards the previous session; its queued messages too.
    a = paho_client("myclientid", 4, clean_session=False)
    a.connect()
    a.subscribe(TOPICS[0], 1)
    a.disconnect()
    pub = paho_client("pub", 4)
    pub.connect()
    pub.publish(TOPICS[0], b"queued", 1)
    fresh = paho_client("myclientid", 4, clean_session=True)
    assert fresh.connect().session_present is False
    fresh.expect_none()
    fresh.disconnect()
    again = paho_client("myclientid", 4, clean_session=False)
    assert again.connect().session_present is False  # nothing left to resume
    pub.publish(TOPICS[0], b"after", 1)
    again.expect_none()


def test_offline_queue_is_bounded_and_drops_the_newest(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(max_queued_messages=3)
    a = PahoClient(port=server.tcp_port, client_id="myclientid")
    pub = PahoClient(port=server.tcp_port, client_id="pub")
    session = paho_props(PacketTypes.CONNECT, SessionExpiryInterval=600)
    try:
        a.connect(properties=session)
        a.subscribe(TOPICS[0], 1)
        a.disconnect()
        pub.connect()
        for i in range(5):
            pub.publish(TOPICS[0], f"m{i}".encode(), 1)
        assert a.connect(clean_start=False, properties=session).session_present is True
        got = a.expect_n(3)
        a.expect_none()
        assert [m.payload for m in got] == [b"m0", b"m1", b"m2"]
    finally:
        a.stop()
        pub.stop()
