"""What the docs promise when a node dies (docs/cluster.md, "What survives the loss of a
node"): its clients reconnect to another node at once; a persistent session resumes with its
subscriptions; retained messages and routing keep working."""

from __future__ import annotations

import queue
import signal
import time
from pathlib import Path

import pytest

from support.cluster import cluster
from support.mqtt_server import Client, props

pytestmark = pytest.mark.postgres


def test_kill_9_of_a_node_its_clients_reconnect_elsewhere(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    with cluster(tmp_path, 2, s3_env) as (a, b):
        pub = Client(a.tcp_port, None, client_id="loss-pub")
        pub.connect()
        device = Client(b.tcp_port, None, client_id="loss-dev")
        device.connect(clean_start=False, properties=props(1, SessionExpiryInterval=600))
        device.subscribe("loss/#", qos=1)
        pub.publish("loss/retained", b"kept", qos=1, retain=True)
        assert device.expect().payload == b"kept"

        b.proc.stop(signal.SIGKILL)
        device.paho.loop_stop()

        again = Client(a.tcp_port, None, client_id="loss-dev")
        started = time.monotonic()
        _, present, _ = again.connect(
            clean_start=False, properties=props(1, SessionExpiryInterval=600)
        )
        assert time.monotonic() - started < 2.0  # the dead node is not waited for
        # The session resumes from its record: its subscription, without subscribing again.
        assert present
        pub.publish("loss/live", b"live", qos=1)
        got = again.expect()
        assert (got.topic, got.payload) == ("loss/live", b"live")
        with pytest.raises(queue.Empty):
            again.expect(timeout=0.3)
        # Retained messages survive (JetStream).
        fresh = Client(a.tcp_port, None, client_id="loss-fresh")
        fresh.connect()
        fresh.subscribe("loss/#", qos=1)
        got = fresh.expect()
        assert (got.payload, got.retain) == (b"kept", True)
        fresh.stop()
        again.stop()
        pub.stop()


def test_a_clean_start_after_a_node_died_gets_a_new_session(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    with cluster(tmp_path, 2, s3_env) as (a, b):
        device = Client(b.tcp_port, None, client_id="loss-clean", version=4, clean=False)
        device.connect()
        device.subscribe("clean/#", qos=1)
        b.proc.stop(signal.SIGKILL)
        device.paho.loop_stop()
        again = Client(a.tcp_port, None, client_id="loss-clean", version=4, clean=True)
        _, present, _ = again.connect()
        assert not present
        again.stop()
