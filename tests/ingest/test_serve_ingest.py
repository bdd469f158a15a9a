"""The ingest component inside a real ``lantern serve`` process, and the tokens/files CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.process import LanternProcess

from .mqtt_kit import postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The environment of the server and the commands: SQLite in the data directory, or a
    fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield {}
        return
    with postgres_database() as url:
        yield {"LANTERN_DATABASE_URL": url}


def test_fhir_api_served_and_cli_tokens(data_dir: Path, database_env: dict[str, str]) -> None:
    def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
        data_dir.mkdir(exist_ok=True)  # as `lantern serve` leaves it: commands never create it
        return subprocess.run(
            [sys.executable, "-m", "lantern", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, **database_env},
        )

    created = cli(data_dir, "tokens", "create", "--project", "default", "--scope", "fhir:read")
    assert created.returncode == 0, created.stderr
    token = next(w for w in created.stdout.split() if w.startswith("lft_"))
    token_id = created.stdout.split("Created token ")[1].split()[0]
    bad = cli(data_dir, "tokens", "create", "--project", "nope")
    assert bad.returncode == 1 and "no project" in bad.stderr
    with LanternProcess(data_dir, dict(database_env)) as server:
        meta = httpx.get(f"{server.http_url}/fhir/metadata")
        assert meta.json()["resourceType"] == "CapabilityStatement"
        auth = {"Authorization": f"Bearer {token}"}
        bundle = httpx.get(f"{server.http_url}/fhir/Observation", headers=auth).json()
        assert bundle["resourceType"] == "Bundle" and bundle["total"] == 0
        admin = (data_dir / "admin-token").read_text().strip()
        files = httpx.get(f"{server.http_url}/files", headers={"Authorization": f"Bearer {admin}"})
        assert files.json() == {"files": [], "nextCursor": None}
        revoked = cli(data_dir, "tokens", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        r = httpx.get(f"{server.http_url}/fhir/Observation", headers=auth)
        assert r.status_code == 401
    listed = cli(data_dir, "tokens", "list")
    assert token_id[:8] in listed.stdout and token not in listed.stdout
    assert "No files yet" in cli(data_dir, "files", "list").stdout
