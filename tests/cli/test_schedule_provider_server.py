"""The running server refuses ``POST /schedules`` to a destination it has no provider for (the
fleet's server has Slack enabled, nothing else), naming the setting that enables it."""

from __future__ import annotations

import httpx

from cli.conftest import Fleet

SCHEDULE = {
    "activity_id": "walk",
    "participant_id": "p2",
    "title": "t",
    "message": "m",
    "timezone": "UTC",
    "start": "2030-01-01T00:00:00",
    "repeat": "daily",
    "times": ["09:00"],
}


def test_server_refuses_unconfigured_provider(fleet: Fleet) -> None:
    out = fleet.ok("keys", "create", "--name", "study-2", "--scope", "internal")
    secret = next(line.strip() for line in out.splitlines() if line.strip().startswith("lk_"))
    auth = {"Authorization": f"Bearer {secret}"}
    url = f"{fleet.server.http_url}/schedules"
    apns = {**SCHEDULE, "destinations": ["apns:" + "ab" * 32]}
    refused = httpx.post(url, json=apns, headers=auth)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "provider_not_configured"
    assert "LANTERN_PUSH__APNS__KEY_FILE" in refused.json()["error"]
    slack = {**SCHEDULE, "destinations": ["slack:T1/B1/zyxwvutsrq"]}
    ok = httpx.post(url, json=slack, headers=auth)
    assert ok.status_code == 201, ok.text
