"""Wills, will delay and session expiry when the node holding the connection is killed
(docs/cluster.md, "What survives the loss of a node"): a survivor publishes the dead node's
wills within :data:`WILL_BOUND` of the kill (the death is found after ``STALE_SECONDS`` without
heartbeat), honours the Will Delay, publishes nothing for a client that came back, and expires
the dead node's sessions."""

from __future__ import annotations

import asyncio
import queue
import signal
import time
from pathlib import Path

import pytest

from lantern.cluster.bus import cluster_name
from lantern.cluster.registry import HEARTBEAT_SECONDS, STALE_SECONDS
from lantern.cluster.retained import topic_key
from support.cluster import NATS_URL, Node, cluster
from support.mqtt_server import Client, Received, props

pytestmark = pytest.mark.postgres

# Death found: no heartbeat for STALE_SECONDS (plus the beat in progress), the sweep's period
# (1 s), the sweeper lock taken over when the dead node held it (2 s), slack for a busy machine.
WILL_BOUND = STALE_SECONDS + HEARTBEAT_SECONDS + 1 + 2 + 3


def _kill(node: Node, *clients: Client) -> float:
    time.sleep(0.5)  # records are written a few ms after a change (what changed just before
    # a death is lost: docs/cluster.md)
    node.proc.stop(signal.SIGKILL)
    for client in clients:
        client.paho.loop_stop()
    return time.monotonic()


def _wills(sub: Client, count: int, timeout: float) -> dict[str, tuple[Received, float]]:
    """``count`` messages by topic, each with when it arrived."""
    got: dict[str, tuple[Received, float]] = {}
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"only {sorted(got)} arrived within {timeout} s")
        msg = sub.expect(timeout=left)
        got[msg.topic] = (msg, time.monotonic())
    return got


def _record(node: Node, client_id: str) -> bytes | None:
    """The client's entry in the cluster's session directory (None: no record)."""
    import nats
    from nats.js.errors import KeyNotFoundError

    url = node.proc.env["LANTERN_DATABASE_URL"]

    async def read() -> bytes | None:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            kv = await nc.jetstream().key_value(f"lantern-{cluster_name(url)}-clients")
            try:
                return (await kv.get(topic_key(client_id))).value
            except KeyNotFoundError:
                return None
        finally:
            await nc.close()

    return asyncio.run(read())


def test_wills_of_a_killed_node_reach_a_subscriber_on_a_survivor(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    with cluster(tmp_path, 2, s3_env) as (a, b):
        sub = Client(a.tcp_port, None, client_id="dw-sub")
        sub.connect()
        sub.subscribe("wills/#", qos=1)
        v3 = Client(b.tcp_port, None, client_id="dw-v3", version=4)
        v3.paho.will_set("wills/v3", b"v3 gone", qos=1, retain=True)
        v3.connect()
        v5 = Client(b.tcp_port, None, client_id="dw-v5")
        will_props = props(
            99,  # paho PacketTypes.WILLMESSAGE
            ContentType="text/plain",
            UserProperty=[("why", "node died")],
            MessageExpiryInterval=300,
        )
        v5.paho.will_set("wills/v5", b"v5 gone", qos=1, properties=will_props)
        v5.connect(properties=props(1, SessionExpiryInterval=0))

        killed = _kill(b, v3, v5)
        got = _wills(sub, 2, WILL_BOUND + 5)
        for topic, (_, at) in got.items():
            print(f"{topic}: {at - killed:.1f} s after the kill")
            assert at - killed < WILL_BOUND, f"{topic} {at - killed:.1f} s after the kill"
        msg3, _ = got["wills/v3"]
        assert (msg3.payload, msg3.qos) == (b"v3 gone", 1)
        msg5, _ = got["wills/v5"]
        assert (msg5.payload, msg5.qos) == (b"v5 gone", 1)
        assert msg5.properties.ContentType == "text/plain"
        assert msg5.properties.UserProperty == [("why", "node died")]
        assert 0 < msg5.properties.MessageExpiryInterval <= 300
        sub.expect_none(1.0)  # each will once
        # The retained will is retained cluster-wide.
        late = Client(a.tcp_port, None, client_id="dw-late")
        late.connect()
        late.subscribe("wills/v3", qos=1)
        again = late.expect()
        assert (again.payload, again.retain) == (b"v3 gone", True)
        # The connections' records are gone (clean sessions ended with their connection).
        assert _record(a, "dw-v3") is None
        assert _record(a, "dw-v5") is None
        late.stop()
        sub.stop()


def test_will_delay_honoured_and_a_reconnect_before_it_cancels_the_will(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    delay = 10
    with cluster(tmp_path, 2, s3_env) as (a, b):
        sub = Client(a.tcp_port, None, client_id="dd-sub")
        sub.connect()
        sub.subscribe("delayed/#", qos=1)
        late = Client(b.tcp_port, None, client_id="dd-late")
        late.paho.will_set(
            "delayed/late", b"late", qos=1, properties=props(99, WillDelayInterval=delay)
        )
        late.connect(clean_start=False, properties=props(1, SessionExpiryInterval=600))
        back = Client(b.tcp_port, None, client_id="dd-back")
        back.paho.will_set(
            "delayed/back", b"back", qos=1, properties=props(99, WillDelayInterval=delay)
        )
        back.connect(clean_start=False, properties=props(1, SessionExpiryInterval=600))
        back.subscribe("delayed/echo", qos=1)

        killed = _kill(b, late, back)
        # dd-back comes back on the survivor before the delay: its session resumes and its
        # will is cancelled.
        time.sleep(1.0)
        again = Client(a.tcp_port, None, client_id="dd-back")
        _, present, _ = again.connect(
            clean_start=False, properties=props(1, SessionExpiryInterval=600)
        )
        assert present
        got = _wills(sub, 1, delay + WILL_BOUND + 5)
        msg, at = got["delayed/late"]
        print(f"will with delay {delay} s: {at - killed:.1f} s after the kill")
        assert msg.payload == b"late"
        # Never before its delay (counted from the kill at the earliest), at most WILL_BOUND late.
        assert delay <= at - killed < delay + WILL_BOUND, at - killed
        with pytest.raises(queue.Empty):
            sub.expect(timeout=3.0)  # dd-back's will never comes
        # dd-back's resumed session still routes its subscription.
        sub.publish("delayed/echo", b"hi", qos=1)
        echo = again.expect()
        assert (echo.topic, echo.payload) == ("delayed/echo", b"hi")
        again.stop()
        sub.stop()


def test_an_expired_session_of_a_dead_node_is_not_resumed(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    with cluster(tmp_path, 2, s3_env) as (a, b):
        short = Client(b.tcp_port, None, client_id="de-short")
        short.connect(clean_start=False, properties=props(1, SessionExpiryInterval=2))
        short.subscribe("exp/short", qos=1)
        offline = Client(b.tcp_port, None, client_id="de-offline")
        offline.connect(clean_start=False, properties=props(1, SessionExpiryInterval=3))
        offline.subscribe("exp/offline", qos=1)
        offline.disconnect()  # an offline session: its expiry timer is in b's memory
        long = Client(b.tcp_port, None, client_id="de-long")
        long.connect(clean_start=False, properties=props(1, SessionExpiryInterval=600))
        long.subscribe("exp/long", qos=1)
        assert _record(a, "de-short") is not None

        _kill(b, short, long)
        # Found dead, then each session's expiry counted from then: the records go.
        deadline = time.monotonic() + WILL_BOUND + 2 + 5
        while _record(a, "de-short") is not None or _record(a, "de-offline") is not None:
            assert time.monotonic() < deadline, "the dead node's expired sessions were kept"
            time.sleep(0.5)
        assert _record(a, "de-long") is not None  # not expired: kept for its client

        for client_id, expiry, expected in (
            ("de-short", 2, False),
            ("de-offline", 3, False),
            ("de-long", 600, True),
        ):
            c = Client(a.tcp_port, None, client_id=client_id)
            _, present, _ = c.connect(
                clean_start=False, properties=props(1, SessionExpiryInterval=expiry)
            )
            assert present is expected, client_id
            c.stop()
