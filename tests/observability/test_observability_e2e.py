"""What an operator sees on ``/metrics`` and in the log of a real ``lantern serve`` while clients
fail: a client certificate from another CA, wrong MQTT passwords, a rejected observation, a push
to a provider that is not configured (503), a malformed push (400). The server logs in JSON
(``log_format = "json"``) with at most 3 refusal lines per reason per minute.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.mqtt_kit import DeviceConnection, create_claim, new_device, observation
from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.packets import Connack, Connect
from lantern.pki import CertificateAuthority, KeyType
from support.net import free_port
from support.process import LanternProcess
from support.provisioning_env import lantern_cli

REFUSALS_PER_MINUTE = 3
BAD_PASSWORD = "not-the-password-8c1f"  # must never reach the log
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
METRICS_DOC = Path(__file__).parents[2] / "docs" / "metrics.md"


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of the sample ``name{labels}`` (labels in any order); 0 when absent."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if head.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0


def families(metrics: str) -> set[str]:
    """Metric family names announced on /metrics (``# TYPE name kind``), with the sample names
    each kind produces (``_total``, ``_bucket``/``_sum``/``_count``)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics, re.MULTILINE):
        names.add(name)
        if kind == "counter":
            names.add(name.removesuffix("_total") + "_total")
        elif kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def connack(port: int, user: str, password: str) -> int:
    """CONNECT over plain TCP with ``user``/``password``; the CONNACK's reason code."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode(Connect("obs-c", 5, username=user, password=password.encode()), 5))
        decoder = Decoder(1024, protocol_level=5, expect_connect=False)
        while True:
            packet = decoder.next_packet()
            if packet is not None:
                assert isinstance(packet, Connack)
                return int(packet.reason_code)
            data = sock.recv(1024)
            assert data, "closed without CONNACK"
            decoder.feed(data)


def foreign_client_handshake(server: LanternProcess, other_ca_dir: Path) -> None:
    """A TLS handshake with a client certificate signed by another CA: the server refuses it."""
    other = CertificateAuthority.load_or_create(other_ca_dir, ["localhost"])[0]
    issued = other.issue("stranger", KeyType.EC_P256)
    cert, key = other_ca_dir / "stranger.pem", other_ca_dir / "stranger.key"
    cert.write_text(issued.certificate_pem)
    assert issued.private_key_pem is not None
    key.write_text(issued.private_key_pem)
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionError)),
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        # TLS 1.3: the client learns of the refusal on its first read.
        tls.sendall(b"\x10\x00")
        tls.recv(10)


def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(data_dir: Path) -> Iterator[LanternProcess]:
    env = {
        "LANTERN_LOG_FORMAT": "json",
        "LANTERN_MQTT__TCP_PORT": str(free_port()),
        "LANTERN_MQTT__LOG_REFUSALS_PER_MINUTE": str(REFUSALS_PER_MINUTE),
        "LANTERN_PROVISIONING__KEY_POOL_SIZE": "2",
    }
    with LanternProcess(data_dir, env=env) as proc:
        yield proc


def test_failures_move_metrics_and_are_logged_rate_limited(
    server: LanternProcess, tmp_path: Path
) -> None:
    tcp_port = int(server.env["LANTERN_MQTT__TCP_PORT"])
    url = f"{server.http_url}/metrics"

    # A device provisions and sends one good and one bad observation.
    claim = create_claim(server, tmp_path / "claim")
    device = new_device(server, claim, tmp_path / "certs", "obs-1")
    with DeviceConnection(server.mqtt_port, device) as conn:
        assert conn.puback(conn.publish("$aws/rules/FHIRIngest", observation("97"))) == 0
        assert conn.puback(conn.publish("$aws/rules/FHIRIngest", b"{not json")) == 0x99

    # A client certificate from another CA.
    foreign_client_handshake(server, tmp_path / "other-ca")

    # Wrong passwords, more of them than the log may show.
    user = subprocess.run(
        [sys.executable, "-m", "lantern", "mqtt-users", "create", "dash", "--password-stdin"],
        input="the-right-password\n",
        env=server.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert user.returncode == 0, user.stderr
    for _ in range(REFUSALS_PER_MINUTE + 4):
        assert connack(tcp_port, "dash", BAD_PASSWORD) == 0x86
    assert connack(tcp_port, "dash", "the-right-password") == 0

    # /push: a provider that is not configured (503) and a body that is not JSON (400).
    created = lantern_cli(server, "keys", "create", "--name", "obs", "--scope", "external")
    assert created.returncode == 0, created.stderr
    match = re.search(r"lk_[A-Za-z0-9_-]{43}", created.stdout)
    assert match is not None
    auth = {"Authorization": f"Bearer {match.group(0)}"}
    unconfigured = httpx.post(
        f"{server.http_url}/push",
        headers=auth,
        json={"device_token": "apns:" + "ab" * 32, "payload": {"aps": {"alert": "x"}}},
    )
    assert unconfigured.status_code == 503, unconfigured.text
    malformed = httpx.post(f"{server.http_url}/push", headers=auth, content=b"{nope")
    assert malformed.status_code == 400

    metrics = httpx.get(url).text
    assert (
        sample(
            metrics,
            "lantern_mqtt_tls_handshake_failures_total",
            listener="mqtts",
            reason="certificate_verify_failed",
        )
        == 1
    )
    assert (
        sample(metrics, "lantern_mqtt_connects_refused_total", reason="bad_user_name_or_password")
        == REFUSALS_PER_MINUTE + 4
    )
    assert sample(metrics, "lantern_mqtt_auth_failures_total", reason="password") == (
        REFUSALS_PER_MINUTE + 4
    )
    assert sample(metrics, "lantern_mqtt_connections_accepted_total", listener="tcp") == (
        REFUSALS_PER_MINUTE + 5
    )
    assert sample(metrics, "lantern_mqtt_packets_received_total", type="CONNECT") >= 10
    assert sample(metrics, "lantern_mqtt_packets_received_total", type="PUBLISH") >= 2
    assert sample(metrics, "lantern_mqtt_packets_sent_total", type="CONNACK") >= 10
    assert sample(metrics, "lantern_mqtt_received_bytes_total", listener="mqtts") > 0
    assert sample(metrics, "lantern_mqtt_sent_bytes_total", listener="mqtts") > 0
    assert sample(metrics, "lantern_ingest_observations_accepted_total") == 1
    assert sample(metrics, "lantern_ingest_observations_rejected_total", reason="InvalidJson") == 1
    assert sample(metrics, "lantern_store_batch_size_count", writer="observations") >= 1
    assert sample(metrics, "lantern_store_commit_seconds_count", writer="registry-writes") >= 1
    for path in ("create_keys", "register_thing"):
        assert (
            sample(metrics, "lantern_provisioning_flows_total", path=path, outcome="accepted") == 1
        )
        assert sample(metrics, "lantern_provisioning_latency_seconds_count", path=path) == 1
    assert sample(metrics, "lantern_push_responses_total", status="503") == 1
    assert sample(metrics, "lantern_push_responses_total", status="400") == 1
    assert (
        sample(
            metrics, "lantern_push_notifications_total", provider="apns", outcome="not_configured"
        )
        == 1
    )
    assert sample(metrics, "lantern_push_rejected_total", code="invalid_json") == 1
    wait_for(
        lambda: sample(httpx.get(url).text, "lantern_provisioning_key_pool_keys") == 2,
        "the key pool to refill",
    )

    # The log: JSON lines, the refusals at INFO with peer and reason, capped per reason.
    lines = json_lines(server.current_output())
    assert lines, server.current_output()
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"]), line
    tls = [line for line in lines if line["msg"].startswith("refused TLS handshake")]
    assert len(tls) == 1, tls
    assert tls[0]["level"] == "INFO" and tls[0]["reason"] == "certificate_verify_failed"
    assert "certificate verify failed" in tls[0]["msg"]
    assert tls[0]["peer"].startswith("127.0.0.1:") and tls[0]["listener"] == "mqtts"
    refused = [line for line in lines if line["msg"].startswith("refused CONNECT")]
    assert len(refused) == REFUSALS_PER_MINUTE, refused
    for line in refused:
        assert line["level"] == "INFO" and line["reason"] == "bad_user_name_or_password"
        assert line["peer"].startswith("127.0.0.1:") and line["listener"] == "tcp"
        assert "bad user name or password (user 'dash')" in line["msg"]
    assert server.stop() == 0
    assert BAD_PASSWORD not in server.output
    assert match.group(0) not in server.output


def test_every_metric_is_documented_and_the_dashboard_queries_only_real_metrics(
    server: LanternProcess,
) -> None:
    metrics = httpx.get(f"{server.http_url}/metrics").text
    exposed = families(metrics)
    documented = METRICS_DOC.read_text()
    missing = sorted(
        name
        for name in re.findall(r"^# TYPE (lantern_\S+) ", metrics, re.MULTILINE)
        if f"`{name}" not in documented and not name.endswith("_created")
    )
    assert not missing, f"not in docs/metrics.md: {missing}"
    dashboard = json.loads(DASHBOARD.read_text())
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queried.update(re.findall(r"\blantern_[a-z0-9_]+", target["expr"]))
    assert queried, "the dashboard queries nothing"
    unknown = sorted(queried - exposed)
    assert not unknown, f"the dashboard queries metrics the server does not have: {unknown}"
