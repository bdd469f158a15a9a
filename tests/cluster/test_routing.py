"""MQTT across two and three ``lantern serve`` nodes: paho clients on different nodes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from support.cluster import Node, cluster
from support.mqtt_server import Client

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]) -> Iterator[list[Node]]:
    with cluster(tmp_path_factory.mktemp("cluster"), 3, s3_env) as started:
        yield started


def client(node: Node, name: str, version: int = 5, **kw: object) -> Client:
    c = Client(node.tcp_port, None, client_id=name, version=version, **kw)  # type: ignore[arg-type]
    return c


def test_publish_reaches_subscribers_on_other_nodes_qos_0_1_2(nodes: list[Node]) -> None:
    a, b, _ = nodes
    sub5 = client(b, "r-sub5")
    sub3 = client(b, "r-sub3", version=4)
    pub = client(a, "r-pub")
    for c in (sub5, sub3, pub):
        c.connect()
    try:
        sub5.subscribe("r/+/temp", qos=2)
        sub3.subscribe("r/#", qos=2)
        for qos in (0, 1, 2):
            pub.publish(f"r/{qos}/temp", f"m{qos}".encode(), qos=qos)
        for sub in (sub5, sub3):
            got = [sub.expect() for _ in range(3)]
            assert [(m.topic, m.payload, m.qos) for m in got] == [
                ("r/0/temp", b"m0", 0),
                ("r/1/temp", b"m1", 1),
                ("r/2/temp", b"m2", 2),
            ]
            sub.expect_none()
    finally:
        for c in (sub5, sub3, pub):
            c.stop()


def test_order_kept_and_no_duplicates_with_overlapping_filters(nodes: list[Node]) -> None:
    a, b, _ = nodes
    sub = client(b, "o-sub")
    pub = client(a, "o-pub")
    sub.connect()
    pub.connect()
    try:
        for f in ("o/#", "o/+", "o/x", "+/x", "#"):
            sub.subscribe(f, qos=1)
        for i in range(50):
            pub.publish("o/x" if i % 2 else "o", str(i).encode(), qos=1, wait=False)
        got = [sub.expect() for _ in range(50)]
        assert [int(m.payload) for m in got] == list(range(50))
        sub.expect_none(0.5)
    finally:
        sub.stop()
        pub.stop()


def test_dollar_topics_and_wildcards_follow_the_single_node_rules(nodes: list[Node]) -> None:
    a, b, _ = nodes
    wild = client(b, "d-wild")
    dollar = client(b, "d-dollar")
    pub = client(a, "d-pub")
    for c in (wild, dollar, pub):
        c.connect()
    try:
        wild.subscribe("#", qos=1)
        wild.subscribe("+/status", qos=1)
        dollar.subscribe("$app/#", qos=1)
        pub.publish("$app/status", b"dollar", qos=1)
        assert dollar.expect().payload == b"dollar"
        wild.expect_none()  # [MQTT-4.7.2-1]: no $ topic through a first-level wildcard
        pub.publish("odd.chars/with space/*/>/", b"escaped", qos=1)
        got = wild.expect()
        assert (got.topic, got.payload) == ("odd.chars/with space/*/>/", b"escaped")
        dollar.expect_none()
    finally:
        for c in (wild, dollar, pub):
            c.stop()


def test_only_nodes_with_a_matching_subscription_receive(nodes: list[Node]) -> None:
    a, b, _c = nodes
    before = [n.metric("lantern_cluster_messages_in_total") for n in nodes]
    sub = client(b, "i-sub")
    pub = client(a, "i-pub")
    sub.connect()
    pub.connect()
    try:
        sub.subscribe("interest/only/b", qos=1)
        for i in range(20):
            pub.publish("interest/only/b", str(i).encode(), qos=1)
        for _ in range(20):
            sub.expect()
        time.sleep(0.3)
        after = [n.metric("lantern_cluster_messages_in_total") for n in nodes]
        assert after[1] - before[1] >= 20  # b got them
        assert after[2] == before[2]  # c, with no subscriber, got nothing
        assert after[0] == before[0]  # a never gets its own messages back
        # The last subscriber of the filter on b leaves: b stops asking for it.
        routes = b.metric("lantern_cluster_routes")
        _, mid = sub.paho.unsubscribe("interest/only/b")
        sub._ack_queue(mid).get(timeout=5)
        deadline = time.monotonic() + 5
        while b.metric("lantern_cluster_routes") != routes - 1:
            assert time.monotonic() < deadline, "b kept its NATS subscription"
            time.sleep(0.05)
        pub.publish("interest/only/b", b"nobody", qos=1)
        time.sleep(0.3)
        assert b.metric("lantern_cluster_messages_in_total") == after[1]
    finally:
        sub.stop()
        pub.stop()


def test_a_topic_too_long_for_a_subject_still_reaches_other_nodes(nodes: list[Node]) -> None:
    a, b, _ = nodes
    topic = "long/" + "/".join(["level" * 40] * 30)  # ~6 KB: past a NATS subject's limit
    sub = client(b, "l-sub")
    pub = client(a, "l-pub")
    sub.connect()
    pub.connect()
    try:
        sub.subscribe("long/#", qos=1)
        pub.publish(topic, b"far", qos=1)
        got = sub.expect()
        assert (got.topic, got.payload) == (topic, b"far")
    finally:
        sub.stop()
        pub.stop()
