"""``aws.events = ["presence"]``: a real ``lantern serve`` publishes AWS's lifecycle events on
``$aws/events/presence/...`` when MQTT clients come and go; without the setting it publishes none.

Own servers (not the package's shared one): the setting is read at start."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from pydantic import ValidationError

from awsapi.conftest import REGION, create_key
from lantern.gateway.presence import disconnect_reason
from lantern.settings.aws import AWSSettings
from support.mqtt_server import Client
from support.net import free_port, wait_for_port
from support.process import LanternProcess

PASSWORD = "a-long-password"
POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Subscribe", "iot:Receive", "iot:Publish"],
            "Resource": [
                "topicfilter/$aws/events/*",
                "topic/$aws/events/*",
                "topicfilter/marker",
                "topic/marker",
            ],
        }
    ]
}


@contextmanager
def _serve(
    data_dir: Path, tmp_path: Path, events: str | None
) -> Iterator[tuple[int, LanternProcess]]:
    tcp_port = free_port()
    env = {"LANTERN_MQTT__TCP_PORT": str(tcp_port)}
    if events is not None:
        env["LANTERN_AWS__EVENTS"] = events
    with LanternProcess(data_dir, env=env) as proc:
        wait_for_port(tcp_port)
        policy = tmp_path / "watch.json"
        policy.write_text(json.dumps(POLICY))
        created = subprocess.run(
            [
                *(sys.executable, "-m", "lantern", "mqtt-users", "create", "watch"),
                f"--policy-file={policy}",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
            env=proc.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        yield tcp_port, proc


def _client(port: int, client_id: str) -> Client:
    client = Client(port, None, client_id, 5)
    client.paho.username_pw_set("watch", PASSWORD)
    return client


def _event(watcher: Client, topic: str) -> dict[str, Any]:
    got = watcher.expect(timeout=10)
    assert (got.topic, got.qos) == (topic, 1)
    event: dict[str, Any] = json.loads(got.payload)
    return event


def test_presence_events_follow_connects_and_disconnects(data_dir: Path, tmp_path: Path) -> None:
    with _serve(data_dir, tmp_path, '["presence"]') as (port, _):
        watcher = _client(port, "watcher")
        watcher.connect()
        assert [r.value for r in watcher.subscribe("$aws/events/presence/#", 1)] == [1]

        device = _client(port, "dev-1")
        device.connect()
        connected = _event(watcher, "$aws/events/presence/connected/dev-1")
        assert connected["clientId"] == "dev-1"
        assert connected["eventType"] == "connected"
        assert connected["principalIdentifier"] == "watch"
        assert connected["ipAddress"] == "127.0.0.1"
        assert isinstance(connected["timestamp"], int) and connected["timestamp"] > 1.6e12
        assert "disconnectReason" not in connected
        device.disconnect()
        gone = _event(watcher, "$aws/events/presence/disconnected/dev-1")
        assert gone["eventType"] == "disconnected"
        assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
        assert gone["clientInitiatedDisconnect"] is True
        assert gone["sessionIdentifier"] == connected["sessionIdentifier"]
        assert gone["versionNumber"] == connected["versionNumber"]

        # The same client id connecting again closes the first connection: DUPLICATE_CLIENTID.
        first = _client(port, "dev-2")
        first.connect()
        one = _event(watcher, "$aws/events/presence/connected/dev-2")
        second = _client(port, "dev-2")
        second.connect()
        dup = _event(watcher, "$aws/events/presence/disconnected/dev-2")
        assert dup["disconnectReason"] == "DUPLICATE_CLIENTID"
        assert dup["clientInitiatedDisconnect"] is False
        assert dup["sessionIdentifier"] == one["sessionIdentifier"]
        two = _event(watcher, "$aws/events/presence/connected/dev-2")
        assert two["sessionIdentifier"] != one["sessionIdentifier"]
        assert two["versionNumber"] >= one["versionNumber"]
        first.paho.loop_stop()

        # A dropped socket (no DISCONNECT): CONNECTION_LOST.
        second.kill()
        lost = _event(watcher, "$aws/events/presence/disconnected/dev-2")
        assert lost["disconnectReason"] == "CONNECTION_LOST"
        assert lost["sessionIdentifier"] == two["sessionIdentifier"]
        watcher.stop()


def test_no_events_by_default(data_dir: Path, tmp_path: Path) -> None:
    with _serve(data_dir, tmp_path, None) as (port, proc):
        watcher = _client(port, "watcher")
        watcher.connect()
        assert [r.value for r in watcher.subscribe("$aws/events/#", 1)] == [1]
        assert [r.value for r in watcher.subscribe("marker", 1)] == [1]
        device = _client(port, "dev-1")
        device.connect()
        device.disconnect()
        # A job canceled and deleted through the control plane: no jobs events either.
        key = create_key(proc, "admin", "admin")
        iot = boto3.client(
            "iot",
            endpoint_url=proc.http_url,
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )
        iot.create_thing(thingName="quiet-1")
        iot.create_job(
            jobId="quiet",
            targets=[f"arn:aws:iot:{REGION}:000000000000:thing/quiet-1"],
            document="{}",
        )
        iot.cancel_job(jobId="quiet", force=True)
        iot.delete_job(jobId="quiet", force=True)
        # The marker is routed after every would-be event: it arrives first only if none exist.
        watcher.publish("marker", b"m", qos=1)
        assert watcher.expect(timeout=10).topic == "marker"
        with pytest.raises(queue.Empty):
            watcher.expect(timeout=0.5)
        watcher.stop()


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="presence"):
        AWSSettings.model_validate({"events": ["presense"]})
    assert AWSSettings().events == []  # off by default


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        ("client disconnected", "CLIENT_INITIATED_DISCONNECT"),
        ("session taken over", "DUPLICATE_CLIENTID"),
        ("keep alive timeout", "MQTT_KEEP_ALIVE_TIMEOUT"),
        ("connection lost", "CONNECTION_LOST"),
        ("protocol error (MALFORMED_PACKET)", "CLIENT_ERROR"),
        ("closed by server (NOT_AUTHORIZED)", "AUTH_ERROR"),
        ("closed by server (ADMINISTRATIVE_ACTION)", "SERVER_INITIATED_DISCONNECT"),
        ("server shutting down", "SERVER_INITIATED_DISCONNECT"),
    ],
)
def test_disconnect_reasons_map_to_aws_names(reason: str, name: str) -> None:
    assert disconnect_reason(reason) == name
