"""A running ``lantern serve`` with one of everything the list and show commands print: a claim,
a provisioned device with an uploaded file, a shadow, an API key, a FHIR token, a schedule, an
MQTT user and policy, firmware, a group and a deployment."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lantern.audit import acting_as, current_actor
from lantern.cli.main import app
from lantern.cluster.registry import NodeRegistration
from lantern.store import Database
from support.process import LanternProcess


@dataclass
class Fleet:
    server: LanternProcess
    ids: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, columns: int = 200, input: str | None = None) -> tuple[int, str, str]:
        """Run ``lantern ARGS`` in-process against the server's data directory: the exit code,
        standard output and standard error (kept apart)."""
        env = {**self.server.command_env(), "COLUMNS": str(columns)}
        with acting_as(current_actor()):  # the command's audit actor must not outlive it
            result = CliRunner().invoke(app, list(args), env=env, input=input)
        return result.exit_code, result.stdout, result.stderr

    def ok(self, *args: str, columns: int = 200, input: str | None = None) -> str:
        code, out, err = self.run(*args, columns=columns, input=input)
        assert code == 0, out + err
        return out

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    env = {"LANTERN_PUSH__SLACK__ENABLED": "true"}
    # A generous start timeout: this suite shares a small machine with others.
    server = LanternProcess(root / "lantern-data", env=env).start(timeout=120)
    try:
        yield from _populate(server, root)
    finally:
        server.stop()


def _populate(server: LanternProcess, root: Path) -> Iterator[Fleet]:
    f = Fleet(server)
    endpoint = f"127.0.0.1:{server.mqtt_port}"
    f.ok("claims", "create", "--template", "DefaultProvisioningTemplate", "--out", f"{root}/c")
    claim = next((root / "c").glob("claim-*.pem"))
    out = f.ok(
        "device", "provision", "--claimCert", str(claim), "--claimKey",
        str(claim.with_suffix(".key")), "--serialNumber", "4711", "--manufacturer", "acme",
        "--name", "bedside", "--model", "m1", "--endpoint", endpoint,
        "--certs-dir", f"{root}/certs",
    )  # fmt: skip
    thing = out.strip().splitlines()[-1]
    (root / "hello.txt").write_text("hello")
    f.ok(
        "device", "upload-file", "--deviceName", thing, "--fileName", "hello",
        "--filePath", str(root / "hello.txt"), "--certs-dir", f"{root}/certs",
        "--endpoint", endpoint,
    )  # fmt: skip
    f.ok("shadows", "update", thing, '{"state": {"desired": {"on": true}}}', "--name", "cfg")
    f.ok("keys", "create", "--name", "research-org", "--scope", "internal")
    key_id = f.json("keys", "list")[0]["keyId"]  # type: ignore[index]
    f.ok("tokens", "create", "--name", "reader")
    f.ok(
        "schedules", "create", "--key", key_id, "--activity", "walk", "--participant", "p1",
        "--to", "slack:T0001/B0001/abcdefghijkl", "--title", "t", "--message", "m",
        "--timezone", "Europe/London", "--start", "2030-01-01T09:00", "--repeat", "daily",
        "--times", "09:00",
    )  # fmt: skip
    policy = root / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
            }
        )
    )
    f.ok("policies", "put", "connect-only", "--file", str(policy))
    f.ok("mqtt-users", "create", "gateway-1", "--policy", "connect-only", "--password-stdin",
         input="correct-horse-battery\n")  # fmt: skip
    (root / "fw.bin").write_bytes(b"\x7fELF" * 1000)
    f.ok("firmware", "upload", str(root / "fw.bin"), "--version", "2.0.1")
    firmware_id = f.json("firmware", "list")[0]["firmwareId"]  # type: ignore[index]
    f.ok("groups", "create", "ward-3")
    f.ok("groups", "add", "ward-3", thing)
    f.ok("deployments", "create", "--firmware", firmware_id, "--group", "ward-3")
    deployment_id = f.json("deployments", "list")[0]["deploymentId"]  # type: ignore[index]
    f.ok("operators", "create", "night-shift-coordinator-ward-3", "--role", "operator",
         input="correct horse battery staple\n")  # fmt: skip
    f.ok("access-keys", "create", "--name", "fleet-automation-pipeline", "--role", "admin")
    (root / "job.json").write_text(json.dumps({"operation": "reboot"}))
    f.ok("jobs", "create", "reboot-ward-3-bedside-monitors-2026-12", "--document",
         str(root / "job.json"), "--things", thing)  # fmt: skip
    asyncio.run(_register_node(server, "node-eu-central-1a-7f3c9b2e"))
    health = httpx.get(f"{server.http_url}/healthz", timeout=5)
    assert health.status_code == 200
    f.ids.update(thing=thing, key=key_id, firmware=firmware_id, deployment=deployment_id)
    yield f


async def _register_node(server: LanternProcess, node_id: str) -> None:
    """A cluster node's row, as a node of ``lantern serve --workers`` writes it at start (its
    last heartbeat a minute ago)."""
    db = await Database.open(f"sqlite+aiosqlite:///{server.data_dir / 'lantern.db'}")
    try:
        await NodeRegistration(
            db,
            node_id,
            mqtt_address="gateway-7.ward-3.hospital.example.org:8883",
            http_address="https://gateway-7.ward-3.hospital.example.org:8443",
            connections=lambda: 0,
            # A node that died a minute ago: always "down", so the table and its footnote are
            # laid out the same whenever a test reads them.
            clock=lambda: time.time() - 60,
        ).register()
    finally:
        await db.close()
