"""The audit log of a running ``lantern serve``: admin actions through the CLI (subprocesses) and
the REST API (httpx) appear with their actor, action, target and outcome, never with a secret;
``GET /v1/audit`` filters and pages; failed admin authentications are recorded, rate-limited."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.process import LanternProcess
from support.provisioning_env import lantern_cli

PASSWORD = "mqtt-password-Zq81-secret"
HOOK_SECRET = "hook-credential-Yp72"
WRONG_TOKENS = ("wrong-token-Xk55", "wrong-token-Wj44")
CLI_ACTOR = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    with LanternProcess(tmp_path_factory.mktemp("audit") / "data") as proc:
        yield proc


def admin(server: LanternProcess) -> httpx.Client:
    token = (server.data_dir / "admin-token").read_text().strip()
    return httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def audit_page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/audit", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def cli_with_input(
    server: LanternProcess, stdin: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """A `lantern` command reading ``stdin`` (as lantern_cli, which gives it none)."""
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args],
        input=stdin,
        env=server.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _ok(done: Any) -> str:
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def test_cli_and_rest_actions_are_recorded_without_secrets(
    server: LanternProcess, tmp_path: Path
) -> None:
    secrets: list[str] = [PASSWORD, HOOK_SECRET, *WRONG_TOKENS]
    # -- CLI ------------------------------------------------------------------------------------
    out = _ok(lantern_cli(server, "keys", "create", "--name", "Org A"))
    secrets.append(next(w for w in out.split() if w.startswith("lk_")))
    short = cli_with_input(server, "short\n", "mqtt-users", "create", "bob", "--password-stdin")
    assert short.returncode == 1 and "at least" in short.stderr  # refused: recorded as failed
    _ok(cli_with_input(server, PASSWORD + "\n", "mqtt-users", "create", "bob", "--password-stdin"))
    _ok(lantern_cli(server, "dev", "client-cert", "--name", "bench-1", "--out", str(tmp_path)))
    secrets.append((tmp_path / "bench-1.key").read_text().splitlines()[1])
    # -- REST -----------------------------------------------------------------------------------
    with admin(server) as client:
        claim = client.post("/v1/claims", json={"templates": ["DefaultProvisioningTemplate"]})
        assert claim.status_code == 201, claim.text
        claim_id = claim.json()["claimId"]
        secrets.append(claim.json()["privateKey"].splitlines()[1])
        assert client.post(f"/v1/claims/{claim_id}/revoke").status_code == 200
        body = client.get("/v1/templates/DefaultProvisioningTemplate").json()["templateBody"]
        template = client.post(
            "/v1/templates",
            json={
                "templateName": "Ward",
                "templateBody": body,
                "preProvisioningHookUrl": f"https://hook.example/?key={HOOK_SECRET}",
            },
        )
        assert template.status_code == 201, template.text
        assert client.patch("/v1/templates/Ward", json={"enabled": False}).status_code == 200
        assert client.delete("/v1/things/no-such-thing").status_code == 404
        firmware = client.post("/v1/firmware", params={"version": "2.0"}, content=b"img" * 100)
        assert firmware.status_code == 201, firmware.text
        fw_id = firmware.json()["firmwareId"]
        assert client.delete(f"/v1/firmware/{fw_id}").status_code == 200
    # The CLI after REST: revoking again fails, and is recorded as failed.
    again = lantern_cli(server, "claims", "revoke", claim_id)
    assert again.returncode == 1 and "already revoked" in again.stderr

    listed = json.loads(_ok(lantern_cli(server, "audit", "list", "--json", "--limit", "100")))
    assert [e["id"] for e in listed] == sorted((e["id"] for e in listed), reverse=True)
    assert all(
        list(e) == ["id", "time", "actor", "action", "target", "outcome", "remote", "details"]
        for e in listed
    )
    seen = {(e["actor"], e["action"], e["target"], e["outcome"]) for e in listed}
    key_id = next(e["target"] for e in listed if e["action"] == "apikey.create")
    assert key_id.startswith("key_")
    expected = {
        (CLI_ACTOR, "apikey.create", key_id, "ok"),
        (CLI_ACTOR, "mqtt_user.create", "bob", "failed"),  # the short password
        (CLI_ACTOR, "mqtt_user.create", "bob", "ok"),
        ("admin-token", "claim.create", claim_id, "ok"),
        ("admin-token", "claim.revoke", claim_id, "ok"),
        ("admin-token", "template.create", "Ward", "ok"),
        ("admin-token", "template.update", "Ward", "ok"),
        ("admin-token", "thing.delete", "no-such-thing", "failed"),
        ("admin-token", "firmware.upload", fw_id, "ok"),
        ("admin-token", "firmware.delete", fw_id, "ok"),
        (CLI_ACTOR, "claim.revoke", claim_id, "failed"),
    }
    assert expected <= seen, expected - seen
    issued = next(e for e in listed if e["action"] == "dev_certificate.issue")
    assert issued["actor"] == CLI_ACTOR and issued["details"] == {"name": "bench-1"}
    rest = [e for e in listed if e["actor"] == "admin-token"]
    assert rest and all(e["remote"] == "127.0.0.1" for e in rest)
    assert all(e["remote"] is None for e in listed if e["actor"] == CLI_ACTOR)
    # No secret in the JSON output, nor anywhere in the stored rows.
    admin_token = (server.data_dir / "admin-token").read_text().strip()
    with sqlite3.connect(server.data_dir / "lantern.db") as conn:
        stored = repr(conn.execute("SELECT * FROM audit_log").fetchall())
    for text in (json.dumps(listed), stored):
        for secret in [*secrets, admin_token]:
            assert secret not in text, secret

    table = _ok(lantern_cli(server, "audit", "list", "--action", "claim"))
    assert "claim.revoke" in table and "claim.create" in table and "apikey" not in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_rest_filters_and_pages(server: LanternProcess) -> None:
    with admin(server) as client:
        for name in ("f1", "f2", "f3"):
            client.post("/v1/claims/missing-" + name + "/revoke")  # three failed revocations
        page = audit_page(client, action="claim.revoke", actor="admin-token", limit=2)
        assert [e["target"] for e in page["entries"]] == ["missing-f3", "missing-f2"]
        assert page["nextCursor"]
        rest = audit_page(
            client, action="claim.revoke", actor="admin-token", limit=2, cursor=page["nextCursor"]
        )
        first = rest["entries"][0]
        assert first["target"] == "missing-f1"
        assert all(e["outcome"] == "failed" for e in [*page["entries"], first])
        assert audit_page(client, since="2999-01-01T00:00:00Z")["entries"] == []
        recent = audit_page(client, since="1h", action="claim.revoke")["entries"]
        assert {e["target"] for e in recent} >= {"missing-f1", "missing-f2", "missing-f3"}
        bad = client.get("/v1/audit", params={"since": "yesterday"})
        assert bad.status_code == 400 and "since" in bad.json()["errorMessage"]
        assert client.get("/v1/audit", params={"limit": "0"}).status_code == 400


def test_failed_admin_authentication_is_recorded_once_per_address_with_a_count(
    server: LanternProcess,
) -> None:
    with httpx.Client(base_url=server.http_url, timeout=10) as anonymous:
        for token in WRONG_TOKENS:
            answer = anonymous.get("/v1/claims", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401
        assert anonymous.get("/v1/audit").status_code == 401  # no token at all
        assert anonymous.delete("/v1/things/x").status_code == 401
    with admin(server) as client:
        deadline = time.monotonic() + 5
        while True:  # the count is written within a second of the last failure
            entries = audit_page(client, action="auth.failed")["entries"]
            if (entries and entries[0]["details"]["count"] == 4) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert len(entries) == 1, entries
    (entry,) = entries
    assert (entry["actor"], entry["outcome"], entry["remote"]) == ("unknown", "denied", "127.0.0.1")
    assert entry["target"] == "GET /v1/claims" and entry["details"] == {"count": 4}
