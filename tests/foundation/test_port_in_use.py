"""``lantern serve`` on a port something else holds: one line naming the port and the setting
to change, no traceback, a non-zero exit; for the HTTP and each MQTT listener."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.process import LanternProcess


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program listens on (every address)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # clashes with any address Lantern binds
        sock.listen()
        yield sock.getsockname()[1]


def serve_exit(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    lantern = LanternProcess(data_dir, env=env)
    return subprocess.run(
        lantern.command(), env=lantern.command_env(), capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("setting", "how", "what"),
    [
        ("http.port", "LANTERN_HTTP__PORT or --http-port", "HTTP"),
        ("mqtt.port", "LANTERN_MQTT__PORT or --mqtt-port", "MQTT (mTLS)"),
        ("mqtt.tcp_port", "LANTERN_MQTT__TCP_PORT", "MQTT (plain TCP)"),
        ("mqtt.ws_port", "LANTERN_MQTT__WS_PORT", "MQTT (WebSocket)"),
    ],
)
def test_port_in_use_is_one_line_naming_port_and_setting(
    data_dir: Path, held_port: int, setting: str, how: str, what: str
) -> None:
    env_var = how.split()[0]
    done = serve_exit(data_dir, {env_var: str(held_port)})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    line = errors[0]
    assert f"{what} port {held_port}" in line and "already in use" in line, line
    assert f"set {setting} ({how}) to a free port" in line, line
    assert "hint:" not in done.stderr, output  # the one line says it all
