"""Session takeover by client id, performed against ``lantern serve`` with paho-mqtt.

Sessions belong to the principal that created them (a thing, a claim, an MQTT user, a
listener's anonymous clients). Another principal presenting the client id is refused with
CONNACK 0x87 (3.1.1: return code 5) and the victim's connection and session are untouched;
claim connections never get a persistent session, and identity-API replies (private keys) are
never resent to a later connection.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.mqtt_server import Client, ClientFiles, props, reason_value
from support.net import free_port, wait_for_port
from support.process import LanternProcess
from support.provisioning_env import Claim, claim_files, provision_device

NOT_AUTHORIZED = 0x87  # paho maps a 3.1.1 return code 5 to 0x87 too
CREATE = "$aws/certificates/create/json"
PASSWORD = "a-long-password"


@pytest.fixture(scope="module")
def lantern(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LanternProcess, int]]:
    """A server with a plain TCP listener that takes MQTT users and anonymous clients."""
    tcp_port = free_port()
    proc = LanternProcess(
        tmp_path_factory.mktemp("own") / "data",
        env={
            "LANTERN_MQTT__TCP_PORT": str(tcp_port),
            "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["tcp"]',
        },
    )
    with proc:
        wait_for_port(tcp_port)
        yield proc, tcp_port


@pytest.fixture(scope="module")
def claim(lantern: tuple[LanternProcess, int], tmp_path_factory: pytest.TempPathFactory) -> Claim:
    out = tmp_path_factory.mktemp("claim")
    return claim_files(lantern[0], out)


def _user(proc: LanternProcess, name: str, tmp: Path, topic_prefix: str | None = None) -> None:
    args = [sys.executable, "-m", "lantern", "mqtt-users", "create", name, "--password-stdin"]
    if topic_prefix is not None:
        policy = tmp / f"{name}.json"
        policy.write_text(
            json.dumps(
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["iot:Publish"],
                            "Resource": [f"topic/{topic_prefix}/*"],
                        }
                    ]
                }
            )
        )
        args.append(f"--policy-file={policy}")
    done = subprocess.run(
        args,
        input=PASSWORD + "\n",
        env=proc.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def _user_client(port: int, name: str, client_id: str, version: int = 5) -> Client:
    client = Client(port, None, client_id, version)
    client.paho.username_pw_set(name, PASSWORD)
    return client


def _claim_client(port: int, claim: Claim, client_id: str, version: int = 5, **kw: bool) -> Client:
    return Client(port, ClientFiles(claim.cert, claim.key, claim.ca), client_id, version, **kw)


def _refused(client: Client, **kw: object) -> int:
    rc = reason_value(client.connect(expect_ok=False, **kw)[0])  # type: ignore[arg-type]
    client.paho.loop_stop()
    return rc


@pytest.mark.parametrize("version", [5, 4])
def test_other_principals_cannot_use_a_thing_name(
    lantern: tuple[LanternProcess, int], claim: Claim, tmp_path: Path, version: int
) -> None:
    proc, tcp_port = lantern
    result, files = provision_device(proc, claim, tmp_path, f"victim{version}")
    thing = result.thing_name
    _user(proc, f"eve{version}", tmp_path)
    device = Client(proc.mqtt_port, files, thing, version)
    device.connect()
    device.subscribe(f"{thing}/cmd", 1)
    try:
        attackers = [
            _claim_client(proc.mqtt_port, claim, thing, version),
            _user_client(tcp_port, f"eve{version}", thing, version),
            Client(tcp_port, None, thing, version),  # anonymous
        ]
        for attacker in attackers:
            assert _refused(attacker, clean_start=True) == NOT_AUTHORIZED
        assert device.disconnects.empty()  # still connected: never taken over
        device.publish(f"{thing}/cmd", b"still mine", qos=1)
        assert device.expect().payload == b"still mine"
    finally:
        device.stop()


def test_a_persisted_device_session_survives_every_takeover_attempt(
    lantern: tuple[LanternProcess, int], claim: Claim, tmp_path: Path
) -> None:
    proc, tcp_port = lantern
    result, files = provision_device(proc, claim, tmp_path, "persisted")
    thing = result.thing_name
    _user(proc, "ops", tmp_path, topic_prefix=thing)
    _user(proc, "mallory", tmp_path)
    device = Client(proc.mqtt_port, files, thing, 5)
    device.connect(clean_start=False, properties=props(1, SessionExpiryInterval=3600))
    device.subscribe(f"{thing}/cmd", 1)
    device.disconnect()
    ops = _user_client(tcp_port, "ops", "ops-1")
    ops.connect()
    ops.publish(f"{thing}/cmd", b"queued while offline", qos=1)
    ops.stop()
    attackers: list[Callable[[], Client]] = [
        lambda: _claim_client(proc.mqtt_port, claim, thing),
        lambda: _user_client(tcp_port, "mallory", thing),
        lambda: Client(tcp_port, None, thing),  # anonymous
    ]
    for attacker in attackers:
        for clean in (False, True):  # neither resume the session nor wipe it
            assert _refused(attacker(), clean_start=clean) == NOT_AUTHORIZED
    back = Client(proc.mqtt_port, files, thing, 5)
    _, present, _ = back.connect(clean_start=False)
    try:
        assert present
        got = back.expect()
        assert (got.topic, got.payload) == (f"{thing}/cmd", b"queued while offline")
    finally:
        back.stop()


def test_user_and_anonymous_sessions_belong_to_their_principal(
    lantern: tuple[LanternProcess, int], tmp_path: Path
) -> None:
    proc, tcp_port = lantern
    _user(proc, "alice", tmp_path)
    _user(proc, "bob", tmp_path)
    client_id = f"shared-{uuid.uuid4().hex[:8]}"
    alice = _user_client(tcp_port, "alice", client_id)
    alice.connect()
    try:
        assert _refused(_user_client(tcp_port, "bob", client_id)) == NOT_AUTHORIZED
        assert _refused(Client(tcp_port, None, client_id)) == NOT_AUTHORIZED
        assert alice.disconnects.empty()
        again = _user_client(tcp_port, "alice", client_id)  # the owner may take over
        again.connect()
        assert reason_value(alice.disconnects.get(timeout=5)) == 0x8E
        again.stop()
    finally:
        alice.stop()


def test_claim_sessions_never_persist_and_replies_are_never_resent(
    lantern: tuple[LanternProcess, int], claim: Claim, tmp_path: Path
) -> None:
    """The key-theft sequence: a claim connection asks for keys and leaves the reply
    unacknowledged; a later connection with its client id (same claim) must not get it."""
    proc, tcp_port = lantern
    _user(proc, "thief", tmp_path)
    client_id = f"line-{uuid.uuid4().hex[:8]}"
    first = _claim_client(proc.mqtt_port, claim, client_id, manual_ack=True)
    _, present, connack = first.connect(
        clean_start=False, properties=props(1, SessionExpiryInterval=3600)
    )
    assert not present
    assert connack.SessionExpiryInterval == 0  # the server grants no persistent session
    first.subscribe(f"{CREATE}/accepted", 1)
    first.publish(CREATE, b"{}", qos=1)
    reply = first.expect(timeout=30)  # in flight: never acknowledged (manual_ack)
    assert "privateKey" in json.loads(reply.payload)

    taker = _claim_client(proc.mqtt_port, claim, client_id)
    _, present, _ = taker.connect(clean_start=False)
    try:
        assert not present
        assert reason_value(first.disconnects.get(timeout=5)) == 0x8E
        with pytest.raises(queue.Empty):
            taker.expect(timeout=1.0)
        # The live claim session is not an MQTT user's either.
        assert _refused(_user_client(tcp_port, "thief", client_id)) == NOT_AUTHORIZED
    finally:
        taker.stop()
        first.paho.loop_stop()


def test_claim_session_is_dropped_even_when_it_asks_to_persist_at_disconnect(
    lantern: tuple[LanternProcess, int], claim: Claim
) -> None:
    proc, _ = lantern
    client_id = f"line-{uuid.uuid4().hex[:8]}"
    first = _claim_client(proc.mqtt_port, claim, client_id, version=4, clean=False)
    _, present, _ = first.connect()
    assert not present
    first.subscribe(f"{CREATE}/accepted", 1)
    first.disconnect()
    again = _claim_client(proc.mqtt_port, claim, client_id, version=4, clean=False)
    _, present, _ = again.connect()
    again.stop()
    assert not present
