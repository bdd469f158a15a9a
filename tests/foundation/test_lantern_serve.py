"""``lantern serve`` as a user runs it: first run creates everything, later runs reuse it."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from support.process import LanternProcess


def test_first_run_creates_data_dir_and_serves_health(data_dir: Path) -> None:
    with LanternProcess(data_dir) as lantern:
        assert httpx.get(f"{lantern.http_url}/healthz").json()["status"] == "ok"
        ready = httpx.get(f"{lantern.http_url}/readyz")
        assert ready.status_code == 200, ready.text
        code = lantern.stop(signal.SIGTERM)
    assert code == 0, lantern.output
    assert "(created)" in lantern.output
    assert str(data_dir / "ca" / "ca.pem") in lantern.output
    assert "lantern claims create" in lantern.output  # the next command to run
    for name in ("ca/ca.pem", "ca/ca.key", "ca/server.pem", "lantern.db", "admin-token"):
        assert (data_dir / name).exists(), name
    assert stat.S_IMODE((data_dir / "admin-token").stat().st_mode) == 0o600
    ca_before = (data_dir / "ca" / "ca.pem").read_bytes()
    token_before = (data_dir / "admin-token").read_text()

    with LanternProcess(data_dir) as again:
        assert again.stop(signal.SIGINT) == 0
    assert "(created)" not in again.output
    assert (data_dir / "ca" / "ca.pem").read_bytes() == ca_before
    assert (data_dir / "admin-token").read_text() == token_before


def test_unknown_setting_stops_startup(data_dir: Path) -> None:
    lantern = LanternProcess(data_dir, env={"LANTERN_MQTT__PROT": "1"})
    proc = subprocess.run(
        [sys.executable, "-m", "lantern", "serve"],
        env=lantern.command_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "LANTERN_MQTT__PROT" in proc.stderr
    assert not data_dir.exists()  # nothing half-created
