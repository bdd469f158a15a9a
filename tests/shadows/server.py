"""``lantern serve`` for the shadow end-to-end tests: real things provisioned by claim, device
clients of the AWS IoT Device SDK v2 (MQTT 5 and 3.1.1) over mTLS, and the admin REST API."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import iotshadow

from lantern.device import Endpoint, provision, write_credentials
from support.aws_sdk import mqtt5_mtls_client, mqtt311_mtls_connection
from support.process import LanternProcess

TIMEOUT = 20.0


@dataclass
class Server:
    proc: LanternProcess
    root: Path
    serials: int = 0

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "lantern", *args],
            env=self.proc.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def new_thing(self) -> tuple[str, Path]:
        """A thing provisioned by claim: its name and the directory of its credentials."""
        self.serials += 1
        serial = f"sh{self.serials}"
        result = provision(
            Endpoint("localhost", self.proc.mqtt_port),
            ca_file=self.proc.ca_file,
            claim_cert=self.root / "claim" / "claim.pem",
            claim_key=self.root / "claim" / "claim.key",
            parameters={"SerialNumber": serial, "Manufacturer": "acme", "Name": serial},
        )
        certs = self.root / "certs"
        write_credentials(result, certs)
        return result.thing_name, certs

    def admin_token(self) -> str:
        return (self.proc.data_dir / "admin-token").read_text().strip()

    def rest(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.proc.http_url,
            timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {token or self.admin_token()}"},
        )


@contextmanager
def serving(root: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``lantern serve`` with a claim certificate in ``root/claim``."""
    with LanternProcess(root / "data", env=env or {}) as proc:
        server = Server(proc, root)
        out = server.cli(
            "claims",
            "create",
            "--template",
            "DefaultProvisioningTemplate",
            "--out",
            str(root / "claim"),
        )
        pems = sorted((root / "claim").glob("claim-*.pem"))
        keys = sorted((root / "claim").glob("claim-*.key"))
        assert pems and keys, out.stdout
        pems[0].rename(root / "claim" / "claim.pem")
        keys[0].rename(root / "claim" / "claim.key")
        yield server


def mqtt5_client(server: Server, thing: str, certs: Path) -> mqtt5.Client:
    """A connected MQTT 5 client; end it with :func:`stop_mqtt5` (waits until it stopped)."""
    client, stopped = mqtt5_mtls_client(
        server.proc.mqtt_port, server.proc.ca_file, thing, certs, TIMEOUT
    )
    _stopped[id(client)] = stopped
    return client


_stopped: dict[int, Future[Any]] = {}


def shadow_client_v2(client: mqtt5.Client) -> iotshadow.IotShadowClientV2:
    options = mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=6,
        max_streaming_subscriptions=4,
        operation_timeout_in_seconds=30,
    )
    return iotshadow.IotShadowClientV2(client, options)


def mqtt311_connection(server: Server, thing: str, certs: Path) -> mqtt.Connection:
    return mqtt311_mtls_connection(
        server.proc.mqtt_port, server.proc.ca_file, thing, certs, TIMEOUT
    )


def stop_mqtt5(client: mqtt5.Client) -> None:
    """Stop ``client`` and wait until it has (a client left running at interpreter exit can
    crash awscrt's shutdown)."""
    client.stop()
    stopped = _stopped.pop(id(client), None)
    if stopped is not None:
        stopped.result(TIMEOUT)
