"""``http.metrics_token``: ``GET /metrics`` of a real ``lantern serve`` needs the bearer token;
a short token is refused at startup without being printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from support.process import LanternProcess

TOKEN = "metrics-scraper-token-0123456789"


def test_metrics_requires_the_token(tmp_path: Path) -> None:
    env = {"LANTERN_HTTP__METRICS_TOKEN": TOKEN}
    with LanternProcess(tmp_path / "data", env=env) as server:
        url = f"{server.http_url}/metrics"
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789abcd"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer"},
        ):
            refused = httpx.get(url, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["code"] == "unauthorized"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "lantern_push" not in refused.text
        allowed = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200
        assert "lantern_push_notifications_total" in allowed.text
        assert httpx.get(f"{server.http_url}/healthz").status_code == 200  # others stay open
        assert server.stop() == 0
    assert TOKEN not in server.output
    assert "bearer token: http.metrics_token" in server.output


def test_short_metrics_token_stops_startup_without_printing_it(tmp_path: Path) -> None:
    env = LanternProcess(tmp_path / "data").command_env()
    env["LANTERN_HTTP__METRICS_TOKEN"] = "tooshort-7"
    done = subprocess.run(
        [sys.executable, "-m", "lantern", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "http.metrics_token" in done.stdout + done.stderr
    assert "tooshort-7" not in done.stdout + done.stderr
