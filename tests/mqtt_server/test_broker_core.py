"""The sans-I/O broker core, without sockets, on a fake clock (``now`` passed explicitly)."""

from __future__ import annotations

import pytest

from lantern.mqtt.broker import (
    NEVER_EXPIRES,
    Broker,
    Delivery,
    Message,
    Session,
    Subscription,
    SubscriptionTrie,
)
from lantern.mqtt.codec import Decoder
from lantern.mqtt.packets import Publish
from lantern.mqtt.properties import Properties


class Conn:
    """A stand-in for a live connection (the broker treats it as opaque)."""


def online(
    broker: Broker,
    cid: str,
    *,
    clean: bool = True,
    expiry: int = 0,
    rm: int = 65535,
    will: Message | None = None,
    will_delay: int = 0,
    now: float = 0.0,
) -> tuple[Session, Conn, bool, list[Delivery]]:
    conn = Conn()
    out = broker.connect(
        cid,
        conn,
        protocol_level=5,
        clean_start=clean,
        expiry_interval=expiry,
        receive_maximum=rm,
        will=will,
        will_delay=will_delay,
        now=now,
    )
    return out.session, conn, out.session_present, out.deliveries


def sub(
    broker: Broker, session: Session, flt: str, qos: int = 1, now: float = 0.0, **kw: object
) -> list[Delivery]:
    from lantern.mqtt.topics import parse_shared

    group, real = parse_shared(flt)
    s = Subscription(session, real, qos, group=group, **kw)  # type: ignore[arg-type]
    return broker.subscribe(session, flt, s, now)[1]


def msg(
    topic: str,
    payload: bytes = b"p",
    qos: int = 1,
    retain: bool = False,
    sender: str | None = "pub",
    props: Properties = Properties(),
    now: float = 0.0,
) -> Message:
    return Message(topic, payload, qos, retain, props, sender=sender, now=now)


# -- trie -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "/x", True),
        ("+", "$SYS", False),
        ("#", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("+/x", "$aws/x", False),
        ("a/+/c", "a//c", True),
    ],
)
def test_trie_matching(flt: str, topic: str, matches: bool) -> None:
    trie = SubscriptionTrie()
    s = Session("c", 5)
    trie.add(Subscription(s, flt, 0))
    plain, _ = trie.match(topic)
    assert bool(plain) is matches


def test_trie_remove_prunes_and_invalidates_cache() -> None:
    trie = SubscriptionTrie()
    s = Session("c", 5)
    trie.add(Subscription(s, "a/+/c", 0))
    assert trie.match("a/b/c")[0]
    assert trie.remove("c", "a/+/c", None)
    assert not trie.match("a/b/c")[0]
    assert not trie.remove("c", "a/+/c", None)
    assert trie.count == 0 and trie._root.empty()


def test_shared_group_round_robin_prefers_online() -> None:
    b = Broker()
    s1, _, _, _ = online(b, "w1")
    s2, c2, _, _ = online(b, "w2", clean=False, expiry=60)
    s3, _, _, _ = online(b, "w3")
    for s in (s1, s2, s3):
        sub(b, s, "$share/g/jobs", 0)
    b.disconnect(s2, c2, publish_will=False, now=0)
    got = [b.publish(msg("jobs", qos=0), 0)[0].session.client_id for _ in range(4)]
    assert got == ["w1", "w3", "w1", "w3"]


# -- retained ---------------------------------------------------------------------------


def test_retained_store_replace_delete_and_handling() -> None:
    b = Broker()
    b.publish(msg("r/1", b"one", retain=True), 0)
    b.publish(msg("r/1", b"two", retain=True), 0)
    b.publish(msg("r/2", b"x", retain=True), 0)
    b.publish(msg("r/2", b"", retain=True), 0)  # deletes
    s, _, _, _ = online(b, "c")
    got = sub(b, s, "r/#")
    assert [(d.message.payload, d.retain) for d in got] == [(b"two", True)]
    assert sub(b, s, "r/#", retain_handling=1) == []  # exists already
    assert sub(b, s, "r/+", retain_handling=2) == []
    assert sub(b, s, "$share/g/r/1") == []  # shared subscriptions get no retained messages


def test_retained_expiry_drops_message() -> None:
    b = Broker()
    b.publish(msg("e", retain=True, props=Properties(message_expiry_interval=5), now=0), 0)
    s, _, _, _ = online(b, "c")
    assert sub(b, s, "e", now=4.0)
    assert sub(b, s, "e", now=6.0) == []
    assert len(b.retained) == 0


# -- delivery, options, windows, queues -------------------------------------------------


def test_no_local_rap_and_qos_downgrade() -> None:
    b = Broker()
    s, _, _, _ = online(b, "me")
    sub(b, s, "t", 0, no_local=True)
    assert b.publish(msg("t", sender="me"), 0) == []
    d = b.publish(msg("t", qos=2, retain=True, sender="other"), 0)[0]
    assert (d.qos, d.retain, d.packet_id) == (0, False, None)
    o, _, _, _ = online(b, "o")
    sub(b, o, "u", 2, retain_as_published=True)
    d = b.publish(msg("u", qos=1, retain=True), 0)[0]
    assert (d.qos, d.retain, d.packet_id) == (1, True, 1)


def test_inflight_window_and_drain_on_ack() -> None:
    b = Broker()
    s, _, _, _ = online(b, "c", rm=2)
    sub(b, s, "t")
    sent = [b.publish(msg("t", str(i).encode()), 0) for i in range(4)]
    assert [len(x) for x in sent] == [1, 1, 0, 0]
    assert len(s.queue) == 2
    more = b.complete(s, sent[0][0].packet_id or 0, 0)
    assert more is not None and [d.message.payload for d in more] == [b"2"]
    assert b.complete(s, 999, 0) is None  # unknown packet id


def test_packet_ids_skip_those_in_flight() -> None:
    s = Session("c", 5)
    s.next_packet_id = 0xFFFF
    assert s.allocate_packet_id() == 0xFFFF
    assert s.allocate_packet_id() == 1


def test_offline_queue_bound_drops_newest_and_counts() -> None:
    b = Broker(max_queued=2)
    s, c, _, _ = online(b, "c", clean=False, expiry=100)
    sub(b, s, "t")
    b.disconnect(s, c, publish_will=False, now=0)
    for i in range(4):
        b.publish(msg("t", str(i).encode()), 0)
    b.publish(msg("t", b"q0", qos=0), 0)
    assert (s.dropped, b.stats.dropped_queue_full, b.stats.dropped_qos0_offline) == (2, 2, 1)
    _, _, present, out = online(b, "c", clean=False, expiry=100, now=1)
    assert present and [d.message.payload for d in out] == [b"0", b"1"]


def test_expired_queued_messages_are_dropped_on_resume() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=100)
    sub(b, s, "t")
    b.disconnect(s, c, publish_will=False, now=0)
    b.publish(msg("t", b"short", props=Properties(message_expiry_interval=2), now=0), 0)
    b.publish(msg("t", b"long", props=Properties(message_expiry_interval=50), now=0), 0)
    _, _, _, out = online(b, "c", clean=False, expiry=100, now=10)
    assert [d.message.payload for d in out] == [b"long"]
    assert b.stats.dropped_expired == 1


def test_resume_resends_inflight_with_dup_and_pubrel() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=100)
    sub(b, s, "t", 2)
    d1 = b.publish(msg("t", b"a", qos=1), 0)[0]
    d2 = b.publish(msg("t", b"b", qos=2), 0)[0]
    assert b.released(s, d2.packet_id or 0)
    b.disconnect(s, c, publish_will=False, now=0)
    _, _, present, out = online(b, "c", clean=False, expiry=100, now=1)
    assert present
    assert [(d.packet_id, d.dup, d.released) for d in out] == [
        (d1.packet_id, True, False),
        (d2.packet_id, False, True),
    ]


def test_session_expiry_ends_session_via_tick() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=10)
    sub(b, s, "t")
    b.disconnect(s, c, publish_will=False, now=0)
    assert b.next_deadline() == 10
    b.tick(9.9)
    assert "c" in b.sessions
    b.tick(10)
    assert "c" not in b.sessions and b.trie.count == 0
    _, _, present, _ = online(b, "c", clean=False, expiry=10, now=11)
    assert present is False


def test_never_expiring_session_is_kept() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=NEVER_EXPIRES)
    b.disconnect(s, c, publish_will=False, now=0)
    assert b.next_deadline() is None and "c" in b.sessions


# -- wills ------------------------------------------------------------------------------


def _watcher(b: Broker) -> Session:
    w, _, _, _ = online(b, "watcher")
    sub(b, w, "will/#")
    return w


def test_will_published_on_abnormal_close_only() -> None:
    b = Broker()
    _watcher(b)
    s, c, _, _ = online(b, "a", will=msg("will/a", sender="a"))
    assert b.disconnect(s, c, publish_will=False, now=0) == []
    s, c, _, _ = online(b, "a", will=msg("will/a", sender="a"))
    out = b.disconnect(s, c, publish_will=True, now=0)
    assert [d.message.topic for d in out] == ["will/a"]


def test_will_delay_then_session_end_or_reconnect() -> None:
    b = Broker()
    _watcher(b)
    s, c, _, _ = online(b, "a", clean=False, expiry=100, will=msg("will/a"), will_delay=5)
    assert b.disconnect(s, c, publish_will=True, now=0) == []
    assert b.tick(4.9) == []
    assert [d.message.topic for d in b.tick(5)] == ["will/a"]
    # Reconnecting before the delay cancels the will.
    s, c, _, _ = online(b, "a", clean=False, expiry=100, will=msg("will/a"), will_delay=5, now=10)
    b.disconnect(s, c, publish_will=True, now=10)
    _, _, _, out = online(b, "a", clean=False, expiry=100, now=12)
    assert out == [] and b.tick(20) == []
    # Session expiry shorter than the delay: the will goes when the session ends.
    s, c, _, _ = online(b, "b", clean=False, expiry=3, will=msg("will/b"), will_delay=60, now=30)
    b.disconnect(s, c, publish_will=True, now=30)
    assert [d.message.topic for d in b.tick(33)] == ["will/b"]


def test_takeover_will_rules() -> None:
    b = Broker()
    _watcher(b)
    online(b, "t", clean=False, expiry=60, will=msg("will/t"), will_delay=10)
    out = b.connect("t", Conn(), protocol_level=5, clean_start=False, expiry_interval=60, now=1)
    assert out.taken_over is not None and out.session_present
    assert out.deliveries == []  # resumed within the delay: will cancelled
    online(b, "u", will=msg("will/u"))
    out = b.connect("u", Conn(), protocol_level=5, clean_start=True, expiry_interval=0, now=1)
    assert [d.message.topic for d in out.deliveries] == ["will/u"]


# -- encoding ---------------------------------------------------------------------------


def test_encoded_publish_is_cached_and_patched_per_recipient() -> None:
    m = msg("t/x", b"payload", qos=1)
    enc = m.encoded(5, 1, False, (), 0)
    assert m.encoded(5, 1, False, (), 0) is enc
    data = enc.with_packet_id(0x1234, dup=True)
    d = Decoder(protocol_level=5, expect_connect=False)
    d.feed(data)
    p = d.next_packet()
    assert isinstance(p, Publish)
    assert (p.topic, p.packet_id, p.dup, p.payload) == ("t/x", 0x1234, True, b"payload")


def test_expiry_and_subscription_ids_in_encoding() -> None:
    m = msg("t", qos=0, props=Properties(message_expiry_interval=60, topic_alias=3), now=0)
    d = Decoder(protocol_level=5, expect_connect=False)
    d.feed(m.encoded(5, 0, False, (7,), 20.5).data)
    p = d.next_packet()
    assert isinstance(p, Publish)
    assert p.properties.message_expiry_interval == 40
    assert p.properties.subscription_identifiers == (7,)
    assert p.properties.topic_alias is None  # never forwarded


# -- ownership and connection-bound replies ---------------------------------------------


def test_sessions_are_owned_by_their_creator() -> None:
    b = Broker()
    out = b.connect(
        "c",
        Conn(),
        protocol_level=5,
        clean_start=True,
        expiry_interval=60,
        owner=("thing", "t1"),
        now=0,
    )
    assert out.session.owner == ("thing", "t1")
    assert not b.owned_by_another("c", ("thing", "t1"))
    assert b.owned_by_another("c", ("claim", "k"))
    assert not b.owned_by_another("unused", ("claim", "k"))
    b.disconnect(out.session, out.session.connection, publish_will=False, now=0)
    assert b.owned_by_another("c", ("claim", "k"))  # persisted: still the thing's
    b.tick(61)
    assert not b.owned_by_another("c", ("claim", "k"))  # expired: the id is free again


def test_direct_replies_end_with_their_connection() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=100, rm=1)
    sub(b, s, "t")
    first = b.deliver_direct(s, msg("reply/accepted", b"secret-1"), 1, 0)
    assert [d.message.payload for d in first] == [b"secret-1"]
    assert b.deliver_direct(s, msg("reply/accepted", b"secret-2"), 1, 0) == []  # window full
    b.publish(msg("t", b"routed"), 0)  # queued behind the reply
    b.disconnect(s, c, publish_will=False, now=0)
    assert b.deliver_direct(s, msg("reply/accepted", b"secret-3"), 1, 0) == []  # never queued
    _, _, present, out = online(b, "c", clean=False, expiry=100, now=1)
    assert present
    assert [d.message.payload for d in out] == [b"routed"]


def test_takeover_drops_direct_replies_of_the_old_connection() -> None:
    b = Broker()
    s, _, _, _ = online(b, "c", clean=False, expiry=100)
    b.deliver_direct(s, msg("reply/accepted", b"key"), 1, 0)
    b.publish(msg("x"), 0)  # not subscribed: nothing
    sub(b, s, "t")
    b.publish(msg("t", b"routed"), 0)
    _, _, present, out = online(b, "c", clean=False, expiry=100, now=1)
    assert present
    assert [(d.message.payload, d.dup) for d in out] == [(b"routed", True)]


def test_resume_resends_only_what_the_new_connection_may_receive() -> None:
    allowed = {"t/ok"}
    b = Broker(may_receive=lambda session, topic: topic in allowed)
    s, c, _, _ = online(b, "c", clean=False, expiry=100)
    sub(b, s, "t/+")
    allowed.add("t/secret")
    b.publish(msg("t/secret", b"in flight"), 0)
    b.publish(msg("t/ok", b"fine"), 0)
    b.disconnect(s, c, publish_will=False, now=0)
    allowed.discard("t/secret")  # the resuming connection may not receive it
    _, _, _, out = online(b, "c", clean=False, expiry=100, now=1)
    assert [d.message.payload for d in out] == [b"fine"]
    assert b.stats.dropped_not_authorized == 1
