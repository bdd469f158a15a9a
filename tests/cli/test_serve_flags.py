"""``lantern serve --http-port N --mqtt-port M``: the flags choose the listeners' ports (over the
environment), side by side in the help."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from typer.testing import CliRunner

from lantern.cli.main import app
from support.net import free_port
from support.process import LanternProcess


@dataclass
class ServeWithFlags(LanternProcess):
    """``lantern serve`` given its ports as flags while the environment names other ports."""

    decoys: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))

    def command(self) -> list[str]:
        ports = ["--http-port", str(self.http_port), "--mqtt-port", str(self.mqtt_port)]
        return [*super().command(), *ports]

    def command_env(self) -> dict[str, str]:
        env = super().command_env()
        env["LANTERN_HTTP__PORT"], env["LANTERN_MQTT__PORT"] = map(str, self.decoys)
        return env


def test_serve_listens_on_the_flag_ports(tmp_path: Path) -> None:
    with ServeWithFlags(tmp_path / "lantern-data") as server:
        assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200
        context = ssl.create_default_context(cafile=str(server.ca_file))
        with (
            socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.version() is not None  # the platform's mTLS MQTT listener answered
        for decoy in server.decoys:
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", decoy)) != 0
        assert str(server.mqtt_port) in server.current_output()  # the banner names it


def test_serve_help_shows_both_port_flags() -> None:
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "80"}).output
    assert "--http-port <int>" in out and "--mqtt-port <int>" in out
    assert out.index("--mqtt-port") > out.index("--http-port")
