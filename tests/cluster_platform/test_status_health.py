"""`lantern cluster status`, `/readyz`, and a node that loses NATS: not ready, says so in the
log, refuses new MQTT connections, and recovers when NATS is back."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from lantern.cluster.embedded_nats import EmbeddedNats
from support.process import LanternProcess
from support.provisioning_env import lantern_cli

from .conftest import node, start_all

# Real nodes on a machine shared with other suites start slowly: more than the default 120 s.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(480)]


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_status_lists_every_node_and_readyz_reports_database_and_nats(
    tmp_path: Path, cluster_env: dict[str, str], stop_after: list[LanternProcess]
) -> None:
    env = {**cluster_env}
    one = node(tmp_path, "one", env, LANTERN_CLUSTER__NODE_ID="alpha")
    two = node(tmp_path, "two", env)
    stop_after += [one, two]
    start_all([one, two])

    listed = lantern_cli(two, "cluster", "status", "--json")
    assert listed.returncode == 0, listed.stderr
    nodes = {n["node_id"]: n for n in json.loads(listed.stdout)}
    assert len(nodes) == 2 and "alpha" in nodes
    (generated,) = set(nodes) - {"alpha"}
    # The generated id is kept in the data directory: the same node after a restart.
    assert (two.data_dir / "node-id").read_text().strip() == generated
    assert nodes["alpha"]["mqtt_address"].endswith(f":{one.mqtt_port}")
    assert nodes[generated]["http_address"].endswith(f":{two.http_port}")
    assert {n["state"] for n in nodes.values()} == {"up"}
    assert nodes["alpha"]["pid"] == one.proc.pid  # type: ignore[union-attr]

    table = lantern_cli(one, "cluster", "status")
    assert table.returncode == 0, table.stderr
    assert "alpha" in table.stdout and generated in table.stdout
    assert "2 of 2 nodes up" in table.stdout

    for proc in (one, two):
        ready = httpx.get(f"{proc.http_url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text

    # A node stopped cleanly leaves the registry.
    one.stop()
    listed = lantern_cli(two, "cluster", "status", "--json")
    assert [n["node_id"] for n in json.loads(listed.stdout)] == [generated]


def _mqtt_handshake(port: int, ca_file: Path) -> bool:
    """Whether the MQTT TLS listener completes a TLS handshake (it refuses new connections
    while the node is not ready: the socket is closed at once)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                return True
    except (OSError, ssl.SSLError):
        return False


def test_a_node_that_loses_nats_is_not_ready_and_refuses_new_connections(
    tmp_path: Path, cluster_env: dict[str, str], stop_after: list[LanternProcess]
) -> None:
    nats = EmbeddedNats(tmp_path / "nats", tmp_path / "nats.log")
    nats.start()
    try:
        proc = node(tmp_path, "one", cluster_env, LANTERN_CLUSTER__NATS_URL=nats.url)
        stop_after.append(proc)
        proc.start(180)
        assert httpx.get(f"{proc.http_url}/readyz", timeout=5).status_code == 200
        assert _mqtt_handshake(proc.mqtt_port, proc.ca_file)

        nats.stop()

        def not_ready() -> bool:
            answer = httpx.get(f"{proc.http_url}/readyz", timeout=5)
            return answer.status_code == 503 and "nats" in answer.json()["problems"]

        _wait(not_ready, 20, "/readyz reports NATS")
        _wait(
            lambda: "not accepting new MQTT connections" in proc.current_output(),
            10,
            "the log says the node stops accepting",
        )
        assert not _mqtt_handshake(proc.mqtt_port, proc.ca_file)

        nats.start()  # the same port again
        _wait(
            lambda: httpx.get(f"{proc.http_url}/readyz", timeout=5).status_code == 200,
            30,
            "ready again once NATS is back",
        )
        _wait(lambda: _mqtt_handshake(proc.mqtt_port, proc.ca_file), 10, "accepting again")
    finally:
        nats.stop()
