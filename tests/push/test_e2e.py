"""End to end: `lantern serve` with APNs pointed at the stand-in, keys from the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from conftest import DEVICE
from lantern.audit import acting_as, current_actor
from lantern.cli.main import app
from support.apns_standin import APNsStandIn
from support.process import LanternProcess


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def lantern(data_dir: Path, *args: str) -> _Result:
    """Run the real CLI in-process (the server runs as a separate process)."""
    data_dir.mkdir(exist_ok=True)  # as `lantern serve` leaves it: commands never create it
    with acting_as(current_actor()):  # the command's actor must not outlive it here
        result = CliRunner().invoke(
            app, [*args], env={"LANTERN_DATA_DIR": str(data_dir), "COLUMNS": "200"}
        )
    return _Result(result.exit_code, result.stdout, result.stderr)


def test_cli_key_then_cli_push_through_lantern_serve(
    data_dir: Path, apns_standin: APNsStandIn
) -> None:
    created = lantern(data_dir, "keys", "create", "--name", "Collaborator", "--scope", "external")
    assert created.returncode == 0, created.stderr
    secret = re.search(r"lk_[A-Za-z0-9_-]{43}", created.stdout)
    assert secret is not None
    env = {
        "LANTERN_PUSH__APNS__KEY_FILE": str(apns_standin.key.path),
        "LANTERN_PUSH__APNS__KEY_ID": apns_standin.key.key_id,
        "LANTERN_PUSH__APNS__TEAM_ID": apns_standin.key.team_id,
        "LANTERN_PUSH__APNS__TOPIC": apns_standin.topic,
        "LANTERN_PUSH__APNS__HOST": apns_standin.host,
        "LANTERN_PUSH__APNS__CA_FILE": str(apns_standin.ca_file),
        "API_KEYS": "seedstylekey0123456789",
    }
    with LanternProcess(data_dir, env=env) as server:
        assert httpx.get(f"{server.http_url}/readyz").status_code == 200
        sent = lantern(
            data_dir,
            "push",
            "--api-key",
            secret.group(0),
            "--url",
            server.http_url,
            f"apns:{DEVICE}",
            '{"aps": {"alert": "Hello world!"}}',
        )
        assert sent.returncode == 0, sent.stderr
        assert "dlv_" in sent.stdout
        seed_key = httpx.post(
            f"{server.http_url}/push",
            json={
                "api_key": "seedstylekey0123456789",
                "device_token": f"apns:{DEVICE}",
                "payload": {"aps": {"alert": "x"}},
            },
        )
        assert seed_key.status_code == 200
        refused = lantern(
            data_dir,
            "push",
            "--api-key",
            secret.group(0),
            "--url",
            server.http_url,
            "sms:+15555550100",
            '{"text": "hi"}',
        )
        assert refused.returncode == 1 and "scope" in refused.stderr
        metrics = httpx.get(f"{server.http_url}/metrics").text
        assert (
            'lantern_push_notifications_total{outcome="delivered",provider="apns"} 2.0' in metrics
        )
        assert server.stop() == 0
    assert apns_standin.count_for(DEVICE) == 2
    listed = lantern(data_dir, "deliveries", "list")
    assert listed.returncode == 0 and listed.stdout.count("delivered") == 2
    keys = lantern(data_dir, "keys", "list")
    assert "Collaborator" in keys.stdout and secret.group(0) not in keys.stdout
    assert "seedstylekey" not in keys.stdout
