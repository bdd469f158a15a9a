"""Rolling restart (docs/cluster.md): a node stopped with SIGTERM sends its MQTT 5 clients
DISCONNECT 0x8B (Server shutting down) with a Server Reference naming another live node,
closes its 3.1.1 clients, and their persistent sessions resume on the other node."""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lantern.cluster.registry import list_status
from lantern.store import Database
from support.cluster import cluster
from support.mqtt_server import WAIT, Client, props

pytestmark = pytest.mark.postgres


def _mqtt_addresses(url: str) -> list[str]:
    """The MQTT addresses of the registered nodes."""

    async def read() -> list[str]:
        db = await Database.open(url, migrate=False)
        try:
            return [n.mqtt_address for n in await list_status(db)]
        finally:
            await db.close()

    return asyncio.run(read())


def _poll_readyz(url: str, answers: list[dict[str, Any]]) -> None:
    """Every /readyz answer until the server stops answering."""
    while True:
        try:
            answers.append(httpx.get(f"{url}/readyz", timeout=2).json())
        except httpx.HTTPError:
            return
        time.sleep(0.01)


def test_sigterm_sends_0x8b_with_a_server_reference_and_sessions_resume_elsewhere(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    # drain_seconds: /readyz says draining for 1 s before the clients are disconnected.
    with cluster(tmp_path, 2, {**s3_env, "LANTERN_CLUSTER__DRAIN_SECONDS": "1"}) as (a, b):
        disconnects: queue.Queue[tuple[Any, Any]] = queue.Queue()
        v5 = Client(b.tcp_port, None, client_id="drain-v5")
        v5.paho.on_disconnect = lambda c, u, flags, rc, p: disconnects.put((rc, p))
        v5.connect(clean_start=False, properties=props(1, SessionExpiryInterval=600))
        v5.subscribe("drain/v5", qos=1)
        v3 = Client(b.tcp_port, None, client_id="drain-v3", version=4, clean=False)
        v3.connect()
        v3.subscribe("drain/v3", qos=1)
        # Node a's address as registered (its mTLS listener on the public host name).
        addresses = _mqtt_addresses(a.proc.env["LANTERN_DATABASE_URL"])
        (expected_reference,) = [x for x in addresses if x.endswith(f":{a.proc.mqtt_port}")]

        answers: list[dict[str, Any]] = []
        poller = threading.Thread(target=_poll_readyz, args=(b.proc.http_url, answers))
        poller.start()
        deadline = time.monotonic() + WAIT
        while not answers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.proc.stop(signal.SIGTERM) == 0
        poller.join()
        # Until its HTTP server stops, /readyz tells the load balancer the node is draining.
        assert answers[0] == {"status": "ready"}
        draining = [x for x in answers if "draining" in x.get("problems", {})]
        assert draining, answers[-3:]
        rc, properties = disconnects.get(timeout=WAIT)
        assert rc.value == 0x8B  # Server shutting down
        assert properties.ServerReference == expected_reference
        assert v3.disconnects.get(timeout=WAIT) is not None  # 3.1.1: closed
        v5.paho.loop_stop()
        v3.paho.loop_stop()

        pub = Client(a.tcp_port, None, client_id="drain-pub")
        pub.connect()
        for client_id, version, topic in (("drain-v5", 5, "drain/v5"), ("drain-v3", 4, "drain/v3")):
            again = Client(a.tcp_port, None, client_id=client_id, version=version, clean=False)
            _, present, _ = again.connect(
                clean_start=False,
                properties=props(1, SessionExpiryInterval=600) if version == 5 else None,
            )
            assert present, client_id  # handed on: its record stayed
            pub.publish(topic, b"after restart", qos=1)
            got = again.expect()  # without subscribing again
            assert (got.topic, got.payload) == (topic, b"after restart")
            again.stop()
        pub.stop()
