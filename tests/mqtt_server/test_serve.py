"""`lantern serve` accepts paho mTLS clients with a certificate from `lantern dev client-cert`."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from support.mqtt_server import Client, ClientFiles, reason_value
from support.net import free_port
from support.process import LanternProcess


def _client_cert(proc: LanternProcess, name: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lantern", "dev", "client-cert", "--name", name, "--out", str(out)],
        env=proc.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_runs_the_mqtt_listeners_and_stops_with_0x8b(data_dir: Path, tmp_path: Path) -> None:
    tcp_port = free_port()
    env = {
        "LANTERN_MQTT__TCP_PORT": str(tcp_port),
        "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
    }
    with LanternProcess(data_dir, env=env) as proc:
        issued = _client_cert(proc, "dev1", tmp_path / "dev1")
        assert issued.returncode == 0, issued.stderr
        assert "mosquitto_pub" in issued.stdout
        key = tmp_path / "dev1" / "dev1.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        # mTLS: the certificate chains to the platform CA, so TLS and CONNECT complete; the
        # gateway (plugged in by now) answers, refusing a certificate not in its registry.
        files = ClientFiles(tmp_path / "dev1" / "dev1.crt", key, proc.ca_file)
        dev = Client(proc.mqtt_port, files, "dev1", 5)
        rc, _, _ = dev.connect(expect_ok=False)
        assert reason_value(rc) == 0x87
        dev.stop()
        # Plain TCP listener with anonymous access: full MQTT service.
        sub = Client(tcp_port, None, "sub", 5)
        sub.connect()
        sub.subscribe("hello/#", 1)
        pub = Client(tcp_port, None, "pub", 4)
        pub.connect()
        pub.publish("hello/world", b"hi", qos=1)
        assert sub.expect().payload == b"hi"
        pub.stop()
        assert proc.stop() == 0
        assert reason_value(sub.disconnects.get(timeout=10)) == 0x8B
        sub.paho.loop_stop()
        assert "mqtts://" in proc.output


def test_client_cert_refuses_bad_name_and_existing_files(data_dir: Path, tmp_path: Path) -> None:
    proc = LanternProcess(data_dir)
    data_dir.mkdir()  # as `lantern serve` leaves it: commands never create it
    bad = _client_cert(proc, "no spaces", tmp_path / "x")
    assert bad.returncode != 0 and "invalid name" in bad.stderr
    assert not (tmp_path / "x").exists()
    assert _client_cert(proc, "dev2", tmp_path / "y").returncode == 0
    again = _client_cert(proc, "dev2", tmp_path / "y")
    assert again.returncode != 0 and "already exists" in again.stderr
