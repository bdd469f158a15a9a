"""Helpers of the hardening tests: a claim certificate over the admin REST API (no CLI process)."""

from __future__ import annotations

from pathlib import Path

import httpx

from support.mqtt_server import ClientFiles
from support.process import LanternProcess
from support.provisioning_env import Claim


def admin_headers(server: LanternProcess) -> dict[str, str]:
    token = (server.data_dir / "admin-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def create_claim(server: LanternProcess, out: Path) -> Claim:
    """A claim for DefaultProvisioningTemplate (``POST /v1/claims``), written to ``out``."""
    created = httpx.post(
        f"{server.http_url}/v1/claims",
        json={"templates": ["DefaultProvisioningTemplate"]},
        headers=admin_headers(server),
        verify=server.http_verify(),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    out.mkdir(parents=True, exist_ok=True)
    claim = Claim(out / "claim.pem", out / "claim.key", out / "ca.pem")
    claim.cert.write_text(body["certificatePem"])
    claim.key.write_text(body["privateKey"])
    claim.ca.write_text(body["caPem"])
    return claim


def claim_files(server: LanternProcess, out: Path) -> ClientFiles:
    claim = create_claim(server, out)
    return ClientFiles(claim.cert, claim.key, claim.ca)
