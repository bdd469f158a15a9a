"""``http.metrics_token``: ``GET /metrics`` of a real ``lantern serve`` needs the bearer token;
a short token is refused (startup fails) without being printed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lantern.errors import ConfigError
from lantern.settings import load_settings
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


def test_short_metrics_token_is_refused_without_being_printed() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"LANTERN_HTTP__METRICS_TOKEN": "tooshort-7"})
    assert "http.metrics_token" in str(refused.value)
    assert "tooshort-7" not in str(refused.value)
    settings = load_settings(environ={"LANTERN_HTTP__METRICS_TOKEN": TOKEN})
    assert settings.http.metrics_token is not None
    assert settings.http.metrics_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
