"""``log_level = "debug"`` must not put values in the log: a real ``lantern serve`` at debug level
goes through a whole flow (provision a device, an observation with a planted patient id, an API
key, a push with a planted token and message, a schedule with a planted title and message), then
its whole output is searched for every planted secret. With ``log_sql_statements = true`` the SQL
statements are logged, still without their parameters."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.apns_standin import APNsStandIn, SigningKey
from support.mqtt_server import Client
from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

PATIENT = "patient-" + uuid.uuid4().hex[:12]
PUSH_TOKEN = uuid.uuid4().hex * 2
PUSH_MESSAGE = "push-message-" + uuid.uuid4().hex
SCHEDULE_TOKEN = uuid.uuid4().hex * 2
SCHEDULE_TITLE = "schedule-title-" + uuid.uuid4().hex
SCHEDULE_MESSAGE = "schedule-message-" + uuid.uuid4().hex


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[APNsStandIn]:
    with APNsStandIn(tmp_path / "apns-tls", SigningKey.create(tmp_path)) as s:
        yield s


def run_flow(server: LanternProcess, tmp_path: Path) -> list[str]:
    """Everything a user does, with planted values; returns the secrets that must stay unlogged
    besides the module's constants."""
    out = tmp_path / "claim"
    done = lantern_cli(server, "claims", "create", "--template", "DefaultProvisioningTemplate",
                       "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    claim = Claim(cert, cert.with_suffix(".key"), out / "ca.pem")
    result, files = provision_device(server, claim, tmp_path / "certs", serial="s1")
    device_key_line = files.key.read_text().splitlines()[2]

    device = Client(server.mqtt_port, files, result.thing_name)
    device.connect()
    try:
        device.subscribe(f"{result.thing_name}/FHIRIngest/+", qos=1)
        observation = {
            "value": 72,
            "unit": "bpm",
            "coding": [{"code": "8867-4", "system": "http://loinc.org"}],
            "patientId": PATIENT,
        }
        device.publish("$aws/rules/FHIRIngest", json.dumps(observation).encode(), qos=1)
        assert device.expect(timeout=10).topic.endswith("/accepted")
        # Another thing's topic: denied, which Lantern logs at DEBUG (proof the level is on).
        assert device.publish("other-thing/data", b"x", qos=1).value == 0x87
    finally:
        device.stop()

    created = lantern_cli(server, "keys", "create", "--name", "org", "--scope", "internal")
    assert created.returncode == 0, created.stderr
    found = re.search(r"lk_[A-Za-z0-9_-]{43}", created.stdout)
    assert found is not None
    key = found.group(0)
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.http_url, timeout=10, headers=auth) as http:
        pushed = http.post(
            "/push",
            json={
                "device_token": f"apns:{PUSH_TOKEN}",
                "payload": {"aps": {"alert": {"title": PUSH_MESSAGE}}},
            },
        )
        assert pushed.status_code == 200, pushed.text
        scheduled = http.post(
            "/schedules",
            json={
                "activity_id": "a1",
                "participant_id": "u1",
                "destinations": [f"apns:{SCHEDULE_TOKEN}"],
                "title": SCHEDULE_TITLE,
                "message": SCHEDULE_MESSAGE,
                "timezone": "Europe/London",
                "start": "2030-01-01T09:00:00",
                "repeat": "daily",
            },
        )
        assert scheduled.status_code == 201, scheduled.text
        assert http.get(f"/schedules/{scheduled.json()['id']}").status_code == 200
    return [key, hashlib.sha256(key.encode()).hexdigest(), device_key_line]


@pytest.mark.parametrize("sql_statements", [False, True], ids=["default", "log_sql_statements"])
def test_debug_log_holds_no_planted_value(
    standin: APNsStandIn, tmp_path: Path, sql_statements: bool
) -> None:
    env = {
        "LANTERN_LOG_LEVEL": "debug",
        "LANTERN_LOG_SQL_STATEMENTS": "true" if sql_statements else "false",
        "LANTERN_PUSH__APNS__KEY_FILE": str(standin.key.path),
        "LANTERN_PUSH__APNS__KEY_ID": standin.key.key_id,
        "LANTERN_PUSH__APNS__TEAM_ID": standin.key.team_id,
        "LANTERN_PUSH__APNS__TOPIC": standin.topic,
        "LANTERN_PUSH__APNS__HOST": standin.host,
        "LANTERN_PUSH__APNS__CA_FILE": str(standin.ca_file),
    }
    server = LanternProcess(tmp_path / "data", env=env)
    with server:
        secrets = run_flow(server, tmp_path)
        assert server.stop() == 0
    log = server.output
    assert "DEBUG lantern.gateway.authorizer: denied iot:Publish" in log  # debug really was on
    has_statements = "INSERT INTO observations" in log or "INSERT INTO schedules" in log
    assert has_statements is sql_statements
    planted = [PATIENT, PUSH_TOKEN, PUSH_MESSAGE, SCHEDULE_TOKEN, SCHEDULE_TITLE, SCHEDULE_MESSAGE]
    for secret in [*planted, *secrets]:
        assert secret not in log, f"{secret!r} is in the log"
