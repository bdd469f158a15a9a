"""Against a running ``lantern serve`` with paho-mqtt: concurrent claim connections never see
each other's replies; what claims and devices may not do; revocation."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from lantern.cli.main import app as lantern_app
from lantern.pki import CertificateAuthority
from lantern.provisioning import admin
from lantern.store import Database
from lantern.store import registry as reg
from support.mqtt_server import Client, ClientFiles, reason_value
from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

T = TypeVar("T")
CREATE = "$aws/certificates/create/json"
CSR = "$aws/certificates/create-from-csr/json"
REGISTER = "$aws/provisioning-templates/DefaultProvisioningTemplate/provision/json"
PARAMS = {"SerialNumber": "7", "Manufacturer": "acme", "Name": "n", "Model": "m"}
NOT_AUTHORIZED = 0x87
# paho reports a 3.1.1 CONNACK return code 5 ("not authorized") as ReasonCode 0x87; the other
# return codes map to other values (1->0x84, 2->0x85, 3->0x88, 4->0x86).
V311_NOT_AUTHORIZED = 0x87


def claim_client(server: LanternProcess, claim: Claim, version: int = 5) -> Client:
    client = Client(
        server.mqtt_port,
        ClientFiles(claim.cert, claim.key, claim.ca),
        f"claim-{uuid.uuid4().hex[:8]}",
        version,
    )
    client.connect()
    return client


def messages_on(client: Client, topic: str) -> list[dict[str, Any]]:
    out = []
    while not client.messages.empty():
        got = client.messages.get_nowait()
        if got.topic == topic:
            out.append(json.loads(got.payload))
    return out


def flush(client: Client) -> None:
    """A request whose reply proves that everything sent to this connection before it arrived."""
    client.subscribe(f"{CSR}/rejected", 1)
    client.publish(CSR, b'{"certificateSigningRequest": "junk"}', qos=1)
    while client.expect().topic != f"{CSR}/rejected":
        pass


def test_concurrent_claim_connections_get_only_their_own_replies(
    server: LanternProcess, claim: Claim
) -> None:
    clients = [claim_client(server, claim, 5 if i % 2 else 4) for i in range(12)]
    for c in clients:
        c.subscribe(f"{CREATE}/accepted", 1)
        c.subscribe(f"{REGISTER}/accepted", 1)
    barrier = threading.Barrier(len(clients))

    def ask(c: Client) -> None:
        barrier.wait()
        c.publish(CREATE, b"{}", qos=1)

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = []
    for c in clients:
        got = c.expect()
        assert got.topic == f"{CREATE}/accepted"
        flush(c)
        assert messages_on(c, f"{CREATE}/accepted") == []  # exactly one reply, its own
        created.append(json.loads(got.payload))
    assert len({body["certificateId"] for body in created}) == len(clients)
    # Register all at once too: each gets its own thing name back.
    for c, body in zip(clients, created, strict=True):
        c.publish(
            REGISTER,
            json.dumps(
                {
                    "certificateOwnershipToken": body["certificateOwnershipToken"],
                    "parameters": PARAMS,
                }
            ).encode(),
            qos=1,
            wait=False,
        )
    for c, body in zip(clients, created, strict=True):
        got = c.expect()
        assert got.topic == f"{REGISTER}/accepted"
        assert json.loads(got.payload)["thingName"] == f"7-{body['certificateId'][:12]}"
        flush(c)
        assert messages_on(c, f"{REGISTER}/accepted") == []
        c.stop()


def test_claim_connection_may_only_use_identity_topics(
    server: LanternProcess, claim: Claim
) -> None:
    c5 = claim_client(server, claim, 5)
    for topic in (
        "telemetry/x",
        "$aws/things/x/jobs/get",
        "$aws/rules/FHIRIngest",
        "$aws/provisioning-templates/Other/provision/json",
    ):
        assert reason_value(c5.publish(topic, b"{}", qos=1)) == NOT_AUTHORIZED, topic
    for filt in (
        "#",
        "$aws/#",
        "$aws/things/+/jobs/notify",
        "$aws/provisioning-templates/Other/provision/json/accepted",
    ):
        assert [reason_value(r) for r in c5.subscribe(filt, 1)] == [NOT_AUTHORIZED], filt
    c5.stop()
    c4 = claim_client(server, claim, 4)
    assert [reason_value(r) for r in c4.subscribe("#", 1)] == [0x80]
    c4.stop()


def test_device_may_only_touch_its_own_topics(
    server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    a, files_a = provision_device(server, claim, tmp_path / "a")
    b, files_b = provision_device(server, claim, tmp_path / "b")
    dev_a = Client(server.mqtt_port, files_a, a.thing_name, 5)
    dev_a.connect()
    dev_b = Client(server.mqtt_port, files_b, b.thing_name, 5)
    dev_b.connect()
    assert [reason_value(r) for r in dev_b.subscribe(f"{b.thing_name}/#", 1)] == [1]
    # A acts on B's topics: denied; QoS 0 silently dropped.
    other = f"$aws/things/{b.thing_name}/jobs/get"
    assert reason_value(dev_a.publish(other, b"{}", qos=1)) == NOT_AUTHORIZED
    for filt in ("$aws/#", f"$aws/things/{b.thing_name}/#", f"{b.thing_name}/#", "#"):
        assert [reason_value(r) for r in dev_a.subscribe(filt, 1)] == [NOT_AUTHORIZED], filt
    dev_a.publish(f"{b.thing_name}/cmd", b"qos0", qos=0)
    assert reason_value(dev_a.publish(f"{b.thing_name}/cmd", b"qos1", qos=1)) == NOT_AUTHORIZED
    dev_b.publish(f"{b.thing_name}/own", b"mine", qos=1)
    assert dev_b.expect().payload == b"mine"  # A's earlier messages would have come first
    assert dev_b.messages.empty()
    # Its own topics work.
    assert [
        reason_value(r) for r in dev_a.subscribe(f"$aws/things/{a.thing_name}/jobs/get/+", 1)
    ] == [1]
    assert reason_value(dev_a.publish(f"{a.thing_name}/x", b"1", qos=1)) in (0, 0x10)
    dev_a.stop()
    dev_b.stop()
    # The client id must be the thing name (MQTT 5: 0x87; 3.1.1: return code 5).
    wrong = Client(server.mqtt_port, files_a, b.thing_name, 5)
    rc, _, _ = wrong.connect(expect_ok=False)
    assert reason_value(rc) == NOT_AUTHORIZED
    wrong.paho.loop_stop()
    wrong311 = Client(server.mqtt_port, files_a, "someone-else", 4)
    rc, _, _ = wrong311.connect(expect_ok=False)
    assert reason_value(rc) == V311_NOT_AUTHORIZED
    wrong311.paho.loop_stop()


def in_store(server: LanternProcess, fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run an operator action in-process on the server's database (faster than the CLI)."""

    async def work() -> T:
        db = await Database.open(f"sqlite+aiosqlite:///{server.data_dir / 'lantern.db'}")
        try:
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(work())


def test_deactivate_kicks_a_live_connection_and_revoked_cannot_reconnect(
    server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    result, files = provision_device(server, claim, tmp_path)
    dev = Client(server.mqtt_port, files, result.thing_name, 5)
    dev.connect()
    done = lantern_cli(server, "certs", "deactivate", result.certificate_id)
    assert done.returncode == 0, done.stderr
    assert "INACTIVE" in done.stdout
    returned = time.monotonic()
    reason = dev.disconnects.get(timeout=5)
    assert time.monotonic() - returned < 1.0
    assert reason_value(reason) == 0x98  # administrative action
    dev.paho.loop_stop()
    again = Client(server.mqtt_port, files, result.thing_name, 5)
    assert reason_value(again.connect(expect_ok=False)[0]) == NOT_AUTHORIZED
    again.paho.loop_stop()
    in_store(
        server, lambda db: admin.set_certificate_status(db, result.certificate_id[:16], "REVOKED")
    )
    refused = Client(server.mqtt_port, files, result.thing_name, 4)
    assert reason_value(refused.connect(expect_ok=False)[0]) == V311_NOT_AUTHORIZED
    refused.paho.loop_stop()
    with pytest.raises(admin.AdminError, match="cannot become ACTIVE"):
        in_store(
            server, lambda db: admin.set_certificate_status(db, result.certificate_id, "ACTIVE")
        )


def test_revoked_claim_is_refused(server: LanternProcess, tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(server.data_dir / "ca")
    record, issued = in_store(
        server, lambda db: admin.create_claim(db, ca, ["DefaultProvisioningTemplate"])
    )
    assert issued.private_key_pem is not None
    cert, key = tmp_path / "claim.pem", tmp_path / "claim.key"
    cert.write_text(issued.certificate_pem)
    key.write_text(issued.private_key_pem)
    files = ClientFiles(cert, key, server.ca_file)
    live = Client(server.mqtt_port, files, "c1", 5)
    live.connect()
    done = lantern_cli(server, "claims", "revoke", record.id)
    assert done.returncode == 0, done.stderr
    assert reason_value(live.disconnects.get(timeout=5)) == 0x98
    live.paho.loop_stop()
    again = Client(server.mqtt_port, files, "c2", 5)
    assert reason_value(again.connect(expect_ok=False)[0]) == NOT_AUTHORIZED
    again.paho.loop_stop()


def test_device_provision_command(server: LanternProcess, claim: Claim, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    done = lantern_cli(
        server,
        "device",
        "provision",
        f"--claimCert={claim.cert}",
        f"--claimKey={claim.key}",
        "--serialNumber=12345",
        "--manufacturer=my-company",
        "--name=my-device",
        "--model=prototype",
        f"--endpoint=localhost:{server.mqtt_port}",
        f"--ca={claim.ca}",
        f"--certs-dir={certs}",
    )
    assert done.returncode == 0, done.stderr
    thing = done.stdout.strip().splitlines()[-1]
    assert thing.startswith("12345-")
    assert (certs / f"{thing}.pem").exists()
    assert (certs / f"{thing}.key").stat().st_mode & 0o777 == 0o600
    things = in_store(server, lambda db: _get_thing(db, thing))
    assert things is not None and things.manufacturer == "my-company"


async def _get_thing(db: Database, name: str) -> reg.ThingRecord | None:
    async with db.connect() as conn:
        return await reg.get_thing(conn, name)


def test_device_provision_kebab_flags_and_errors(
    server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        lantern_app,
        [
            "device",
            "provision",
            f"--claim-cert={claim.cert}",
            f"--claim-key={claim.key}",
            "--serial-number=9",
            "--manufacturer=m",
            "--name=n",
            "--model=m",
            f"--endpoint=localhost:{server.mqtt_port}",
            f"--certs-dir={tmp_path / 'ok'}",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().splitlines()[-1].startswith("9-")
    missing = runner.invoke(
        lantern_app,
        [
            "device",
            "provision",
            f"--claimCert={tmp_path}/nope.pem",
            f"--claimKey={claim.key}",
            "--serialNumber=1",
            "--manufacturer=m",
            "--name=n",
            "--model=m",
        ],
    )
    assert missing.exit_code != 0 and "does not exist" in missing.output
    bad = runner.invoke(
        lantern_app,
        [
            "device",
            "provision",
            f"--claimCert={claim.cert}",
            f"--claimKey={claim.key}",
            "--serialNumber=has space",
            "--manufacturer=m",
            "--name=n",
            "--model=m",
            f"--endpoint=localhost:{server.mqtt_port}",
            f"--certs-dir={tmp_path / 'c'}",
        ],
    )
    assert bad.exit_code != 0
    assert "InvalidParameters" in bad.output and "SerialNumber" in bad.output
    assert not (tmp_path / "c").exists()
