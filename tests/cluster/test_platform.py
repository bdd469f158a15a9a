"""The platform across nodes: a device provisioned and connected on one node is reached by
jobs created on another, and loses its connection within 1 s when its certificate is
deactivated or its thing deleted through another node."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lantern.device import Endpoint, provision, write_credentials
from support.cluster import Node, cluster
from support.mqtt_server import Client, ClientFiles

pytestmark = pytest.mark.postgres

IMAGE = os.urandom(10_000)


@dataclass
class Platform:
    nodes: list[Node]
    root: Path
    firmware_id: str

    def cli(self, node: Node, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "lantern", *args],
            env=node.proc.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def rest(self, node: Node) -> httpx.Client:
        token = (node.proc.data_dir / "admin-token").read_text().strip()
        return httpx.Client(
            base_url=node.proc.http_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )

    def device(self, node: Node, serial: str) -> tuple[str, str, Client]:
        """Provision through ``node`` and connect there (MQTT 5, mTLS, client id = thing)."""
        result = provision(
            Endpoint("localhost", node.proc.mqtt_port),
            ca_file=node.proc.ca_file,
            claim_cert=self.root / "claim" / "claim.pem",
            claim_key=self.root / "claim" / "claim.key",
            parameters={
                "SerialNumber": serial,
                "Manufacturer": "acme",
                "Name": serial,
                "Model": "m",
            },
        )
        cert, key = write_credentials(result, self.root / serial)
        client = Client(
            node.proc.mqtt_port,
            ClientFiles(cert, key, node.proc.ca_file),
            client_id=result.thing_name,
        )
        client.connect()
        return result.thing_name, result.certificate_id, client


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]
) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    env = {"LANTERN_JOBS__TIMER_TICK_SECONDS": "0.2", **s3_env}
    with cluster(root, 2, env) as nodes:
        a = nodes[0]
        p = Platform(nodes, root, "")
        p.cli(
            a,
            "claims",
            "create",
            "--template",
            "DefaultProvisioningTemplate",
            "--out",
            str(root / "claim"),
        )
        (pem,) = (root / "claim").glob("claim-*.pem")
        (key,) = (root / "claim").glob("claim-*.key")
        pem.rename(root / "claim" / "claim.pem")
        key.rename(root / "claim" / "claim.key")
        image = root / "image.bin"
        image.write_bytes(IMAGE)
        out = p.cli(a, "firmware", "upload", str(image), "--version", "2.0.0", "--name", "pump")
        assert hashlib.sha256(IMAGE).hexdigest() in out
        p.firmware_id = out.split("Firmware ", 1)[1].split(" ", 1)[0]
        yield p


def test_a_deployment_created_on_one_node_notifies_a_device_on_another(
    platform: Platform,
) -> None:
    a, b = platform.nodes
    thing, _, device = platform.device(b, "jobs-1")
    try:
        device.subscribe(f"$aws/things/{thing}/jobs/notify-next", qos=1)
        with platform.rest(a) as rest:
            created = rest.post(
                "/v1/deployments", json={"firmwareId": platform.firmware_id, "things": [thing]}
            )
        assert created.status_code == 201, created.text
        job_id = created.json()["deploymentId"]
        got = device.expect(timeout=10)
        assert got.topic == f"$aws/things/{thing}/jobs/notify-next"
        assert json.loads(got.payload)["execution"]["jobId"] == job_id
    finally:
        device.stop()


def _closed_within(device: Client, seconds: float) -> float:
    started = time.monotonic()
    try:
        device.disconnects.get(timeout=seconds)
    except queue.Empty:
        raise AssertionError(f"device still connected {seconds} s later") from None
    return time.monotonic() - started


def test_deactivating_a_certificate_on_one_node_drops_the_device_on_another(
    platform: Platform,
) -> None:
    a, b = platform.nodes
    _, cert_id, device = platform.device(b, "kick-1")
    try:
        with platform.rest(a) as rest:
            changed = rest.put(f"/v1/certificates/{cert_id}", json={"status": "INACTIVE"})
            assert changed.status_code == 200, changed.text
        _closed_within(device, 1.0)
    finally:
        device.paho.loop_stop()


def test_deleting_a_thing_on_one_node_drops_its_device_on_another(platform: Platform) -> None:
    a, b = platform.nodes
    thing, _, device = platform.device(b, "kick-2")
    try:
        with platform.rest(a) as rest:
            deleted = rest.delete(f"/v1/things/{thing}")
            assert deleted.status_code in (200, 204), deleted.text
        _closed_within(device, 1.0)
    finally:
        device.paho.loop_stop()
