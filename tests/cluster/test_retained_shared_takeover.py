"""Retained messages, shared subscriptions and client-id takeover across two nodes."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import suppress

import pytest

from support.cluster import Node, cluster
from support.mqtt_server import Client, props

pytestmark = pytest.mark.postgres

SESSION_TAKEN_OVER = 0x8E


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]) -> Iterator[list[Node]]:
    with cluster(tmp_path_factory.mktemp("cluster"), 2, s3_env) as started:
        yield started


def client(node: Node, name: str, version: int = 5, **kw: object) -> Client:
    return Client(node.tcp_port, None, client_id=name, version=version, **kw)  # type: ignore[arg-type]


def eventually_retained(node: Node, topic: str, name: str) -> list[bytes]:
    """Subscribe on ``node`` (a fresh client each time) and collect the retained messages."""
    c = client(node, name)
    c.connect()
    try:
        c.subscribe(topic, qos=1)
        got: list[bytes] = []
        while True:
            try:
                got.append(c.expect(timeout=0.3).payload)
            except queue.Empty:
                return got
    finally:
        c.stop()


def wait_retained(node: Node, topic: str, want: list[bytes]) -> None:
    deadline = time.monotonic() + 5
    got: list[bytes] = []
    while time.monotonic() < deadline:
        got = eventually_retained(node, topic, "ret-check")
        if got == want:
            return
    raise AssertionError(f"retained on {topic}: {got}, expected {want}")


def test_retained_set_replace_delete_seen_on_the_other_node(nodes: list[Node]) -> None:
    a, b = nodes
    pub = client(a, "ret-pub")
    pub.connect()
    try:
        pub.publish("ret/state", b"one", qos=1, retain=True)
        wait_retained(b, "ret/state", [b"one"])
        pub.publish("ret/state", b"two", qos=1, retain=True)
        wait_retained(b, "ret/+", [b"two"])
        pub.publish("ret/state", b"", qos=1, retain=True)
        wait_retained(b, "ret/#", [])
    finally:
        pub.stop()
    # A retained message published on b is served by a, with its properties.
    other = client(b, "ret-pub-b")
    other.connect()
    try:
        other.publish(
            "ret/b", b"from-b", qos=1, retain=True, properties=props(3, ContentType="text/x")
        )
    finally:
        other.stop()
    c = client(a, "ret-sub-a")
    c.connect()
    try:
        deadline = time.monotonic() + 5
        while True:
            c.subscribe("ret/b", qos=1)
            try:
                got = c.expect(timeout=0.5)
                break
            except queue.Empty:
                assert time.monotonic() < deadline, "retained message from b never seen on a"
        assert (got.payload, got.retain, got.properties.ContentType) == (b"from-b", True, "text/x")
    finally:
        c.stop()


def test_shared_subscription_balances_across_nodes_one_delivery_each(nodes: list[Node]) -> None:
    a, b = nodes
    members = [client(a, "sh-a1"), client(a, "sh-a2"), client(b, "sh-b1")]
    pub = client(b, "sh-pub")
    for c in (*members, pub):
        c.connect()
    try:
        for m in members:
            m.subscribe("$share/workers/jobs/+", qos=1)
        n = 60
        for i in range(n):
            pub.publish(f"jobs/{i % 3}", str(i).encode(), qos=1)
        # Collect until all n arrived (no fixed wait), then drain what else comes (duplicates).
        per_member: list[list[int]] = [[] for _ in members]
        deadline = time.monotonic() + 15
        while sum(map(len, per_member)) < n and time.monotonic() < deadline:
            for m, got in zip(members, per_member, strict=True):
                with suppress(queue.Empty):
                    while True:
                        got.append(int(m.messages.get_nowait().payload))
            time.sleep(0.02)
        for m, got in zip(members, per_member, strict=True):
            while True:
                try:
                    got.append(int(m.expect(timeout=0.2).payload))
                except queue.Empty:
                    break
        everything = sorted(x for got in per_member for x in got)
        assert everything == list(range(n))  # each message to exactly one member
        on_a = len(per_member[0]) + len(per_member[1])
        assert on_a > 0 and per_member[2], per_member  # both nodes took part
    finally:
        for c in (*members, pub):
            c.stop()


@pytest.mark.parametrize("version", [5, 4])
def test_takeover_across_nodes_keeps_the_session(nodes: list[Node], version: int) -> None:
    a, b = nodes
    cid = f"roamer-{version}"
    expiry = props(1, SessionExpiryInterval=300) if version == 5 else None
    first = client(a, cid, version=version, clean=False)
    first.connect(clean_start=False, properties=expiry)
    first.subscribe("roam/#", qos=1)
    pub = client(a, f"roam-pub-{version}")
    pub.connect()
    try:
        # Messages queued while the client is away (its connection on a is gone).
        first.kill()
        time.sleep(0.3)
        for i in range(5):
            pub.publish(f"roam/{i}", str(i).encode(), qos=1)
        # Reconnect on b: the session moves over with its queue, in order.
        second = client(b, cid, version=version, clean=False)
        _, present, _ = second.connect(clean_start=False, properties=expiry)
        assert present
        assert [int(second.expect().payload) for _ in range(5)] == list(range(5))
        # Its subscription now lives on b: a publish on a still reaches it.
        pub.publish("roam/after", b"after", qos=1)
        assert second.expect().payload == b"after"
        # A third connection on a takes it over from b: b's is closed within 1 s.
        third = client(a, cid, version=version, clean=False)
        started = time.monotonic()
        _, present, _ = third.connect(clean_start=False, properties=expiry)
        assert present
        rc = second.disconnects.get(timeout=1.0)
        assert time.monotonic() - started < 1.0
        if version == 5:
            assert rc == SESSION_TAKEN_OVER
        pub.publish("roam/again", b"again", qos=1)
        # Messages whose PUBACK had not reached b when it handed the session over are resent
        # (as DUP, before anything new), which MQTT allows; nothing else comes first.
        seen = {str(i).encode() for i in range(5)} | {b"after"}
        got = third.expect()
        while got.payload != b"again":
            assert got.dup and got.payload in seen, got
            got = third.expect()
        second.expect_none()
        third.stop()
        second.paho.loop_stop()
    finally:
        pub.stop()


def test_takeover_with_clean_start_publishes_the_will_and_drops_the_session(
    nodes: list[Node],
) -> None:
    a, b = nodes
    watcher = client(b, "will-watch")
    watcher.connect()
    watcher.subscribe("wills/#", qos=1)
    first = client(a, "will-dev")
    first.paho.will_set("wills/dev", b"gone", qos=1)
    first.connect(clean_start=False, properties=props(1, SessionExpiryInterval=300))
    first.subscribe("will-dev/in", qos=1)
    try:
        second = client(b, "will-dev")
        _, present, _ = second.connect(clean_start=True)
        assert not present
        assert first.disconnects.get(timeout=1.0) == SESSION_TAKEN_OVER
        assert watcher.expect().payload == b"gone"
        second.stop()
    finally:
        watcher.stop()
        first.paho.loop_stop()


def test_simultaneous_first_connects_on_two_nodes_leave_one_connection(nodes: list[Node]) -> None:
    """Two connections with one new client id arriving at two nodes at once: the cluster keeps
    one of them (the other gets DISCONNECT 0x8E), as one node would, never both."""
    a, b = nodes
    for round_ in range(8):
        cid = f"racer-{round_}"
        pair = [client(a, cid), client(b, cid)]
        for c in pair:  # no automatic reconnect: it would take the session back
            c.paho.reconnect_delay_set(min_delay=120, max_delay=120)
        start = threading.Barrier(2)
        threads = [threading.Thread(target=_connect_at_once, args=(c, start)) for c in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        try:
            codes = []
            for c in pair:
                try:
                    codes.append(c.disconnects.get(timeout=1.5 if not codes else 0.5))
                except queue.Empty:
                    codes.append(None)
            assert sorted(codes, key=lambda x: x is None) in ([SESSION_TAKEN_OVER, None],), (
                round_,
                codes,
            )
            survivor = pair[codes.index(None)]
            assert survivor.paho.is_connected()
        finally:
            for c in pair:
                c.paho.loop_stop()
                c.paho.disconnect()


def _connect_at_once(c: Client, start: threading.Barrier) -> None:
    start.wait()
    c.connect(clean_start=False, properties=props(1, SessionExpiryInterval=60))
