"""The broker's cluster plug point and session hand-off, sans I/O (lantern.mqtt.broker.link,
lantern.mqtt.broker.handoff)."""

from __future__ import annotations

from test_broker_core import online, sub

from lantern.mqtt.broker import Broker, Message
from lantern.mqtt.broker.handoff import adopt, hand_off


class Link:
    def __init__(self) -> None:
        self.forwarded: list[str] = []
        self.interest: list[tuple[str, str | None, bool]] = []

    def forward(self, message: Message) -> None:
        self.forwarded.append(message.topic)

    def interest_changed(self, topic_filter: str, group: str | None, added: bool) -> None:
        self.interest.append((topic_filter, group, added))


def linked() -> tuple[Broker, Link]:
    broker = Broker()
    link = Link()

    class Adapter:
        forward = staticmethod(link.forward)
        interest = staticmethod(link.interest_changed)

        @staticmethod
        def session_changed(session: object, ended: bool) -> None:
            pass

    broker.link = Adapter()
    return broker, link


def test_local_messages_are_forwarded_once_and_remote_ones_never() -> None:
    broker, link = linked()
    s, _, _, _ = online(broker, "s")
    sub(broker, s, "a/#")
    assert len(broker.publish(Message("a/b", b"1", 1), 0.0)) == 1
    assert link.forwarded == ["a/b"]
    assert len(broker.publish_remote(Message("a/c", b"2", 1), 0.0)) == 1
    assert link.forwarded == ["a/b"]


def test_interest_follows_subscriptions_and_session_end() -> None:
    broker, link = linked()
    s, conn, _, _ = online(broker, "s")
    sub(broker, s, "a/+")
    sub(broker, s, "a/+")  # a replacement is not new interest
    sub(broker, s, "$share/g/b")
    broker.unsubscribe(s, "a/+")
    broker.disconnect(s, conn, publish_will=False, now=1.0)  # session ends: its filters go
    assert link.interest == [
        ("a/+", None, True),
        ("b", "g", True),
        ("a/+", None, False),
        ("b", "g", False),
    ]


def test_shared_groups_are_left_to_the_cluster_which_names_the_member_node() -> None:
    broker, _ = linked()
    s1, _, _, _ = online(broker, "s1")
    s2, _, _, _ = online(broker, "s2")
    sub(broker, s1, "$share/g/jobs/+")
    sub(broker, s2, "$share/g/jobs/+")
    assert broker.publish(Message("jobs/1", b"x", 1), 0.0) == []  # not picked locally
    picked = [
        broker.publish_shared(Message(f"jobs/{i}", b"x", 1), "g", "jobs/+", 0.0)[0].session
        for i in range(4)
    ]
    assert [p.client_id for p in picked] == ["s1", "s2", "s1", "s2"]
    assert broker.publish_shared(Message("jobs/9", b"x", 1), "other", "jobs/+", 0.0) == []


def test_hand_off_and_adopt_keep_subscriptions_in_flight_and_queued_in_order() -> None:
    old = Broker(max_inflight=2)
    s, _conn, _, _ = online(old, "dev", clean=False, expiry=300, rm=2)
    sub(old, s, "t/#", qos=2)
    for i in range(5):
        old.publish(Message(f"t/{i}", str(i).encode(), 1), 0.0)
    assert sorted(s.inflight) == [1, 2] and len(s.queue or ()) == 3
    snapshot, wills = hand_off(old, s, clean_start=False, now=1.0)
    assert wills == [] and "dev" not in old.sessions and old.trie.count == 0
    assert snapshot is not None

    new, link = linked()
    assert adopt(new, snapshot, owner=None, now=2.0)
    assert link.interest == [("t/#", None, True)]
    resumed, _, present, out = online(new, "dev", clean=False, expiry=300, rm=2, now=2.0)
    assert present
    assert [(d.packet_id, d.dup, d.message.payload) for d in out] == [
        (1, True, b"0"),
        (2, True, b"1"),
    ]
    more = new.complete(resumed, 1, 3.0) or []
    more += new.complete(resumed, 2, 3.0) or []
    assert [d.message.payload for d in more] == [b"2", b"3"]
    assert [d.message.payload for d in new.complete(resumed, 3, 3.0) or []] == [b"4"]


def test_hand_off_to_a_clean_start_publishes_the_will_and_keeps_nothing() -> None:
    broker = Broker()
    watcher, _, _, _ = online(broker, "w")
    sub(broker, watcher, "wills/#")
    s, _, _, _ = online(
        broker, "dev", clean=False, expiry=300, will=Message("wills/dev", b"gone", 1), will_delay=60
    )
    snapshot, wills = hand_off(broker, s, clean_start=True, now=1.0)
    assert snapshot is None
    assert [d.message.payload for d in wills] == [b"gone"]
