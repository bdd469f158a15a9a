"""Anonymous clients on a development listener of a running ``lantern serve`` (paho-mqtt over
plain TCP) beside a provisioned device (mTLS): by default they cannot reach any registered
device's topics, nor take a device's client id; with ``provisioning.anonymous_policy`` they get
exactly what that stored policy allows, and a missing policy stops startup."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lantern.gateway import accounts
from lantern.pki import CertificateAuthority
from lantern.provisioning import admin
from lantern.store import Database
from lantern.store import registry as reg
from support.mqtt_server import Client, reason_value
from support.net import free_port, wait_for_port
from support.process import LanternProcess
from support.provisioning_env import Claim, provision_device

NOT_AUTHORIZED = 0x87
BAD_CLIENT_ID = 0x87  # not authorized: refusals do not tell which names exist


def _db(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}"


async def _claim(data_dir: Path, out: Path) -> Claim:
    """A claim as `lantern claims create` makes it (same service, same data directory)."""
    ca, _ = CertificateAuthority.load_or_create(data_dir / "ca")
    db = await Database.open(_db(data_dir))
    try:
        _, issued = await admin.create_claim(db, ca, ["DefaultProvisioningTemplate"])
    finally:
        await db.close()
    assert issued.private_key_pem is not None
    out.mkdir(parents=True, exist_ok=True)
    (out / "claim.pem").write_text(issued.certificate_pem)
    (out / "claim.key").write_text(issued.private_key_pem)
    return Claim(out / "claim.pem", out / "claim.key", ca.ca_file)


async def _in_store(data_dir: Path, action: Any) -> None:
    db = await Database.open(_db(data_dir))
    try:
        await action(db)
    finally:
        await db.close()


@dataclass
class Setup:
    server: LanternProcess
    tcp_port: int
    thing: str
    device: Client


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("anon")
    tcp_port = free_port()
    env = {
        "LANTERN_MQTT__TCP_PORT": str(tcp_port),
        "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
        "LANTERN_PROVISIONING__KEY_TYPE": "ec-p256",
    }
    with LanternProcess(root / "data", env=env) as server:
        wait_for_port(tcp_port)
        claim = asyncio.run(_claim(server.data_dir, root / "claim"))
        result, files = provision_device(server, claim, root / "device")
        device = Client(server.mqtt_port, files, result.thing_name, 5)
        device.connect()
        assert [reason_value(r) for r in device.subscribe(f"{result.thing_name}/#", 1)] == [1]
        try:
            yield Setup(server, tcp_port, result.thing_name, device)
        finally:
            device.stop()


def anonymous(port: int, client_id: str) -> Client:
    client = Client(port, None, client_id, 5)
    client.connect()
    return client


def test_default_anonymous_access_excludes_device_topics(setup: Setup) -> None:
    thing, device = setup.thing, setup.device
    # A retained device message already there: a later `#` subscription must not get it.
    device.publish(f"{thing}/status", b"retained reading", qos=1, retain=True)
    assert device.expect().topic == f"{thing}/status"
    anon = anonymous(setup.tcp_port, "anon-1")
    try:
        for topic_filter in (f"{thing}/#", thing, f"{thing}/+/x", f"$share/g/{thing}/#"):
            assert [reason_value(r) for r in anon.subscribe(topic_filter, 1)] == [NOT_AUTHORIZED], (
                topic_filter
            )
        assert [reason_value(r) for r in anon.subscribe("#", 1)] == [1]
        for topic in (f"{thing}/cmd", thing, f"{thing}/CreateFileUploadLink/accepted"):
            assert reason_value(anon.publish(topic, b"spoofed", qos=1)) == NOT_AUTHORIZED, topic
        # The device's own data: delivered to the device, never to the anonymous `#`.
        device.publish(f"{thing}/data", b"heart rate 72", qos=1)
        assert device.expect().payload == b"heart rate 72"
        device.expect_none()  # no spoofed message reached the device either
        assert reason_value(anon.publish("lab/hello", b"hi", qos=1)) == 0
        got = anon.expect()
        assert (got.topic, got.payload) == ("lab/hello", b"hi")  # first and only message
        anon.expect_none()
    finally:
        anon.stop()


def test_no_client_may_take_over_a_device_by_its_client_id(setup: Setup) -> None:
    thing = setup.thing
    taker = Client(setup.tcp_port, None, thing, 5)
    assert reason_value(taker.connect(expect_ok=False)[0]) == BAD_CLIENT_ID
    taker.paho.loop_stop()

    async def user(db: Database) -> None:
        await accounts.create_mqtt_user(db, "dash", "a-long-password-1")

    asyncio.run(_in_store(setup.server.data_dir, user))
    as_user = Client(setup.tcp_port, None, thing, 5)
    as_user.paho.username_pw_set("dash", "a-long-password-1")
    assert reason_value(as_user.connect(expect_ok=False)[0]) == BAD_CLIENT_ID
    as_user.paho.loop_stop()
    # Still connected: the device was not kicked off.
    setup.device.publish(f"{thing}/data", b"still here", qos=1)
    assert setup.device.expect().payload == b"still here"
    # A user without a policy may do nothing, with its own client id (unchanged).
    own = Client(setup.tcp_port, None, "dash-1", 5)
    own.paho.username_pw_set("dash", "a-long-password-1")
    own.connect()
    try:
        assert reason_value(own.publish("lab/x", b"x", qos=1)) == NOT_AUTHORIZED
        assert [reason_value(r) for r in own.subscribe("#", 1)] == [NOT_AUTHORIZED]
    finally:
        own.stop()


def test_things_created_by_another_process_are_excluded_within_a_second(setup: Setup) -> None:
    anon = anonymous(setup.tcp_port, "anon-2")
    try:
        assert reason_value(anon.publish("late-thing/x", b"before", qos=1)) == 0

        async def register(db: Database) -> None:
            now = time.time()
            async with db.transaction() as conn:
                await reg.insert_thing(
                    conn,
                    reg.ThingRecord("late-thing", "default", {}, *[None] * 5, now, now),
                )

        asyncio.run(_in_store(setup.server.data_dir, register))
        deadline = time.monotonic() + 5
        while reason_value(anon.publish("late-thing/x", b"after", qos=1)) != NOT_AUTHORIZED:
            assert time.monotonic() < deadline, "the new thing's topics stayed open"
            time.sleep(0.1)
    finally:
        anon.stop()


POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": ["topic/lab/*", "topic/clients/${iot:ClientId}/*", "topic/$aws/rules/*"],
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": ["topicfilter/lab/*", "topicfilter/clients/${iot:ClientId}/*"],
        },
        {"Effect": "Deny", "Action": "iot:Publish", "Resource": "topic/lab/readonly"},
    ],
}


def test_anonymous_policy_is_checked_at_startup_then_is_exactly_what_they_get(
    tmp_path: Path,
) -> None:
    tcp_port = free_port()
    env = {
        "LANTERN_MQTT__TCP_PORT": str(tcp_port),
        "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
        "LANTERN_PROVISIONING__ANONYMOUS_POLICY": "dev-anonymous",
    }
    missing = LanternProcess(tmp_path / "data", env=env)
    refused = subprocess.run(
        [sys.executable, "-m", "lantern", "serve"],
        env=missing.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "provisioning.anonymous_policy" in refused.stderr, refused.stderr
    assert "lantern policies put dev-anonymous" in refused.stderr

    async def put(db: Database) -> None:
        await accounts.put_policy(db, "dev-anonymous", json.loads(json.dumps(POLICY)))

    asyncio.run(_in_store(tmp_path / "data", put))
    with LanternProcess(tmp_path / "data", env=env):  # the policy exists now
        wait_for_port(tcp_port)
        anon = anonymous(tcp_port, "c1")
        try:
            assert [reason_value(r) for r in anon.subscribe("lab/#", 1)] == [1]
            assert [reason_value(r) for r in anon.subscribe("clients/c1/#", 1)] == [1]
            for refused in ("#", "other/#", "clients/c2/#"):
                assert [reason_value(r) for r in anon.subscribe(refused, 1)] == [NOT_AUTHORIZED], (
                    refused
                )
            assert reason_value(anon.publish("lab/a", b"1", qos=1)) == 0
            assert anon.expect().topic == "lab/a"
            assert reason_value(anon.publish("clients/c1/a", b"2", qos=1)) == 0
            assert anon.expect().topic == "clients/c1/a"
            for refused in ("other", "clients/c2/a", "lab/readonly", "$aws/rules/FHIRIngest"):
                assert reason_value(anon.publish(refused, b"x", qos=1)) == NOT_AUTHORIZED, refused
            anon.expect_none()
        finally:
            anon.stop()
        # An empty client id is assigned, and ${iot:ClientId} is that id.
        nameless = anonymous(tcp_port, "")
        try:
            assert reason_value(nameless.publish("lab/b", b"3", qos=1)) == 0
            assert reason_value(nameless.publish("clients/c1/a", b"x", qos=1)) == NOT_AUTHORIZED
        finally:
            nameless.stop()
