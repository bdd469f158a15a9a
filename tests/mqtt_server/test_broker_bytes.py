"""Byte limits of the broker core: per session (queued + in flight) and for all queues."""

from __future__ import annotations

import random

from test_broker_core import msg, online, sub

from lantern.mqtt.broker import Broker, Message, Session


def held(session: Session) -> int:
    deliveries = [*(session.queue or ()), *session.inflight.values()]
    return sum(d.message.size for d in deliveries)


def check_accounting(broker: Broker) -> None:
    for session in broker.sessions.values():
        assert session.held_bytes == held(session)
    queued = sum(d.message.size for s in broker.sessions.values() for d in s.queue or ())
    assert broker.stats.queued_bytes == queued


def test_message_size_is_payload_and_topic() -> None:
    assert Message("ab/c", b"x" * 10).size == 14


def test_session_cap_counts_queued_and_inflight_and_drops_the_newest() -> None:
    b = Broker(max_session_bytes=40)
    s, _, _, _ = online(b, "c", rm=2)
    sub(b, s, "t")
    sent = [b.publish(msg("t", bytes([i]) * 10), 0) for i in range(5)]  # 11 bytes each
    assert [len(out) for out in sent] == [1, 1, 0, 0, 0]  # two in flight, then queued
    assert len(s.queue or ()) == 1 and s.held_bytes == 33
    assert (b.stats.dropped_session_bytes, s.dropped, b.stats.queued_bytes) == (2, 2, 11)
    more = b.complete(s, sent[0][0].packet_id or 0, 1)
    assert more is not None and [d.message.payload for d in more] == [bytes([2]) * 10]
    assert (s.held_bytes, b.stats.queued_bytes) == (22, 0)
    out = b.publish(msg("t", b"z" * 10), 1)  # room again (window full: queued)
    assert out == [] and s.held_bytes == 33
    check_accounting(b)


def test_window_open_but_session_full_drops() -> None:
    b = Broker(max_session_bytes=25)
    s, _, _, _ = online(b, "c")
    sub(b, s, "t")
    assert len(b.publish(msg("t", b"a" * 10), 0)) == 1
    assert len(b.publish(msg("t", b"b" * 10), 0)) == 1
    assert b.publish(msg("t", b"c" * 10), 0) == []
    assert b.stats.dropped_session_bytes == 1
    assert b.publish(msg("t", b"q0" * 10, qos=0), 0) != []  # QoS 0 is never held: not capped


def test_total_budget_of_queues() -> None:
    b = Broker(max_queued_bytes_total=30)
    sessions = []
    for cid in ("a", "b"):
        s, c, _, _ = online(b, cid, clean=False, expiry=100)
        sub(b, s, "t")
        b.disconnect(s, c, publish_will=False, now=0)
        sessions.append(s)
    b.publish(msg("t", b"1" * 10), 0)  # 11 bytes to each queue: 22
    b.publish(msg("t", b"2" * 10), 0)  # a: 33 > 30 dropped; b too
    assert b.stats.queued_bytes == 22 and b.stats.dropped_total_bytes == 2
    _, _, present, out = online(b, "a", clean=False, expiry=100, now=1)
    assert present and len(out) == 1 and b.stats.queued_bytes == 11  # moved in flight
    check_accounting(b)


def test_ending_a_session_returns_its_queued_bytes() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=10)
    sub(b, s, "t")
    b.disconnect(s, c, publish_will=False, now=0)
    b.publish(msg("t", b"x" * 100), 0)
    assert b.stats.queued_bytes == 101
    b.tick(11)  # the session expired
    assert "c" not in b.sessions and b.stats.queued_bytes == 0
    s, c, _, _ = online(b, "d", clean=False, expiry=10)
    sub(b, s, "t")
    b.disconnect(s, c, publish_will=False, now=20)
    b.publish(msg("t", b"x" * 100), 20)
    online(b, "d", clean=True, now=21)  # Clean Start discards it
    assert b.stats.queued_bytes == 0


def test_expired_and_unauthorized_queued_messages_release_their_bytes() -> None:
    b = Broker()
    s, c, _, _ = online(b, "c", clean=False, expiry=100)
    sub(b, s, "t/#")
    b.disconnect(s, c, publish_will=False, now=0)
    from lantern.mqtt.properties import Properties

    b.publish(msg("t/a", b"x", props=Properties(message_expiry_interval=1)), 0)
    b.publish(msg("t/deny", b"y"), 0)
    b.publish(msg("t/b", b"z"), 0)
    b.may_receive = lambda _s, topic: topic != "t/deny"
    _, _, _, out = online(b, "c", clean=False, expiry=100, now=5)
    assert [d.message.topic for d in out] == ["t/b"]
    assert s.held_bytes == 4 and b.stats.queued_bytes == 0


def test_accounting_stays_exact_under_random_operations() -> None:
    rng = random.Random(7)
    b = Broker(max_queued=5, max_session_bytes=60, max_queued_bytes_total=150)
    conns: dict[str, object | None] = {}
    for step in range(3000):
        cid = rng.choice("abcd")
        session = b.sessions.get(cid)
        now = float(step)
        op = rng.random()
        if op < 0.4:
            size = rng.randint(0, 20)
            b.publish(msg(rng.choice(["t", "t/x"]), b"p" * size, qos=rng.choice((0, 1, 2))), now)
        elif op < 0.6 and session is not None and session.inflight:
            b.complete(session, rng.choice(list(session.inflight)), now)
        elif op < 0.75:
            if conns.get(cid) is None:
                s, conn, _, _ = online(
                    b, cid, clean=rng.random() < 0.2, expiry=5, rm=rng.randint(1, 3), now=now
                )
                sub(b, s, "t/#")
                conns[cid] = conn
            elif session is not None:
                b.disconnect(session, conns[cid], publish_will=False, now=now)
                conns[cid] = None
        else:
            b.tick(now)
        check_accounting(b)
    assert b.stats.dropped_session_bytes and b.stats.dropped_total_bytes


def test_retained_store_is_bounded_in_bytes() -> None:
    b = Broker(max_retained_bytes=100)
    b.publish(msg("r/a", b"x" * 40, retain=True), 0)  # 43 bytes
    b.publish(msg("r/b", b"y" * 40, retain=True), 0)  # 86
    b.publish(msg("r/c", b"z" * 40, retain=True), 0)  # 129 > 100: refused
    assert (b.retained.bytes, b.retained.refused, len(b.retained)) == (86, 1, 2)
    b.publish(msg("r/a", b"X" * 10, retain=True), 0)  # a smaller replacement fits
    assert b.retained.bytes == 56
    b.publish(msg("r/b", b"Y" * 90, retain=True), 0)  # too big: refused, the old one forgotten
    assert b.retained.get("r/b") is None and b.retained.bytes == 13
    b.publish(msg("r/a", b"", retain=True), 0)  # delete
    assert b.retained.bytes == 0 and len(b.retained) == 0


def test_retained_bytes_follow_expiry() -> None:
    from lantern.mqtt.properties import Properties

    b = Broker(max_retained_bytes=100)
    b.publish(msg("r/a", b"x" * 40, retain=True, props=Properties(message_expiry_interval=1)), 0)
    s, _, _, _ = online(b, "c", now=5)
    assert sub(b, s, "r/#", now=5) == [] and b.retained.bytes == 0
