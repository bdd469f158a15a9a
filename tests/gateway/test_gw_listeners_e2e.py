"""Plain TCP and WebSocket listeners of a running ``lantern serve``: username/password accounts
with their own policy, and anonymous access only where the operator enabled it (loudly)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from support.mqtt_server import Client, reason_value
from support.net import free_port, wait_for_port
from support.process import LanternProcess


def ws_client(port: int) -> tuple[paho.Client, list[Any], threading.Event]:
    results: list[Any] = []
    done = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id="anon-ws",
        protocol=paho.MQTTv5,
        transport="websockets",
    )
    client.ws_set_options(path="/mqtt")

    def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        results.append(rc)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    return client, results, done


def test_users_by_password_on_tcp_and_anonymous_only_on_the_enabled_listener(
    data_dir: Path, tmp_path: Path
) -> None:
    tcp_port, ws_port = free_port(), free_port()
    proc = LanternProcess(
        data_dir,
        env={
            "LANTERN_MQTT__TCP_PORT": str(tcp_port),
            "LANTERN_MQTT__WS_PORT": str(ws_port),
            "LANTERN_PROVISIONING__ANONYMOUS_LISTENERS": '["ws"]',
        },
    )
    with proc:
        wait_for_port(tcp_port)
        policy = tmp_path / "dash.json"
        policy.write_text(
            json.dumps(
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["iot:Subscribe", "iot:Receive", "iot:Publish"],
                            "Resource": ["topicfilter/dashboard/#", "topic/dashboard/*"],
                        }
                    ]
                }
            )
        )
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "lantern",
                "mqtt-users",
                "create",
                "dash",
                f"--policy-file={policy}",
                "--password-stdin",
            ],
            input="a-long-password\n",
            env=proc.command_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        # Anonymous on tcp: refused (not enabled there).
        anon_tcp = Client(tcp_port, None, "anon", 5)
        assert reason_value(anon_tcp.connect(expect_ok=False)[0]) == 0x87
        anon_tcp.paho.loop_stop()
        wrong = Client(tcp_port, None, "dash-1", 5)
        wrong.paho.username_pw_set("dash", "not-the-password")
        assert reason_value(wrong.connect(expect_ok=False)[0]) == 0x86
        wrong.paho.loop_stop()
        user = Client(tcp_port, None, "dash-1", 5)
        user.paho.username_pw_set("dash", "a-long-password")
        user.connect()
        assert [reason_value(r) for r in user.subscribe("dashboard/#", 1)] == [1]
        assert [reason_value(r) for r in user.subscribe("#", 1)] == [0x87]
        assert reason_value(user.publish("elsewhere", b"x", qos=1)) == 0x87
        user.publish("dashboard/a", b"hi", qos=1)
        assert user.expect().payload == b"hi"
        user.stop()
        # Anonymous on ws: allowed (the operator enabled it for that listener).
        client, results, done = ws_client(ws_port)
        client.loop_start()
        try:
            assert done.wait(10)
            assert not results[0].is_failure
        finally:
            client.disconnect()
            client.loop_stop()
    assert "ANONYMOUS" in proc.output or "anonymous MQTT access is ENABLED" in proc.output
    assert "ws listener" in proc.output
