"""``log_level = "debug"`` must not put values in the log: a real ``lantern serve`` at debug level
goes through a whole flow (provision a device, an observation with a planted patient id, an API
key, a push with a planted token and message, a schedule with a planted title and message), then
its whole output is searched for every planted secret. It runs with ``log_sql_statements = true``
(SQL statements are logged, never their parameters); without it the SQL loggers say nothing
below WARNING (checked on the logging configuration itself)."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hardening_kit import create_claim

from support.apns_standin import APNsStandIn, SigningKey
from support.mqtt_server import Client
from support.process import LanternProcess
from support.provisioning_env import provision_device

PATIENT = "patient-" + uuid.uuid4().hex[:12]
PUSH_TOKEN = uuid.uuid4().hex * 2
PUSH_MESSAGE = "push-message-" + uuid.uuid4().hex
SCHEDULE_TOKEN = uuid.uuid4().hex * 2
SCHEDULE_TITLE = "schedule-title-" + uuid.uuid4().hex
SCHEDULE_MESSAGE = "schedule-message-" + uuid.uuid4().hex
API_KEY = "seed-key-" + uuid.uuid4().hex  # imported from API_KEYS, as the seed's servers do


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[APNsStandIn]:
    with APNsStandIn(tmp_path / "apns-tls", SigningKey.create(tmp_path)) as s:
        yield s


def run_flow(server: LanternProcess, tmp_path: Path) -> list[str]:
    """Everything a user does, with planted values; returns the secrets that must stay unlogged
    besides the module's constants."""
    claim = create_claim(server, tmp_path / "claim")
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

    key = API_KEY
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


def test_debug_log_holds_no_planted_value(standin: APNsStandIn, tmp_path: Path) -> None:
    env = {
        "LANTERN_LOG_LEVEL": "debug",
        "LANTERN_LOG_SQL_STATEMENTS": "true",  # the most the log can say
        "API_KEYS": API_KEY,
        "API_KEYS_SCOPE": "internal",
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
    assert "INSERT INTO schedules" in log  # statements, but never their values:
    assert "[SQL parameters hidden due to hide_parameters=True]" in log
    planted = [PATIENT, PUSH_TOKEN, PUSH_MESSAGE, SCHEDULE_TOKEN, SCHEDULE_TITLE, SCHEDULE_MESSAGE]
    for secret in [*planted, *secrets]:
        assert secret not in log, f"{secret!r} is in the log"


@pytest.mark.parametrize("sql_statements", [False, True])
def test_value_printing_loggers_are_capped(sql_statements: bool) -> None:
    """What ``lantern serve`` configures at log_level debug (checked in a fresh interpreter)."""
    code = (
        "import logging; from lantern.runtime.logs import configure_logging;"
        f"configure_logging('debug', sql_statements={sql_statements});"
        "names = ['aiosqlite', 'asyncpg', 'sqlalchemy.engine.Engine', 'sqlalchemy.pool',"
        " 'httpx', 'httpcore.http2', 'hpack.hpack', 'h2', 'botocore.endpoint', 'aiosmtplib',"
        " 'websockets.server', 'lantern.gateway'];"
        "print({n: logging.getLogger(n).getEffectiveLevel() for n in names})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    levels = ast.literal_eval(out.stdout)
    engine = levels.pop("sqlalchemy.engine.Engine")
    assert engine == (logging.INFO if sql_statements else logging.WARNING)
    assert levels.pop("lantern.gateway") == logging.DEBUG
    assert all(level == logging.WARNING for level in levels.values()), levels
