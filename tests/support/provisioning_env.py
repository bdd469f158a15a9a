"""Helpers for the provisioning tests: a fake clock, the test environment, calling handlers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lantern.device import Endpoint, ProvisionResult, provision, write_credentials
from lantern.gateway import ClaimIdentity, DeviceRequest, HandlerResult
from lantern.pki import CertificateAuthority
from lantern.provisioning.admin import create_claim
from lantern.provisioning.service import ProvisioningService
from lantern.store import Database
from support.mqtt_server import ClientFiles
from support.process import LanternProcess


@dataclass
class Claim:
    """Files of a claim certificate as `lantern claims create` writes them."""

    cert: Path
    key: Path
    ca: Path


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    db: Database
    ca: CertificateAuthority
    clock: FakeClock
    service: ProvisioningService
    claim: ClaimIdentity

    async def new_claim(self, *templates: str, limit: int | None = None) -> ClaimIdentity:
        record, _ = await create_claim(
            self.db,
            self.ca,
            list(templates or ["DefaultProvisioningTemplate"]),
            device_limit=limit,
        )
        return ClaimIdentity(
            certificate_id=record.certificate_id,
            claim_id=record.id,
            project=record.project,
            allowed_templates=frozenset(record.allowed_templates),
        )


async def call(
    handler: object, topic: str, payload: bytes, identity: object, **params: str
) -> HandlerResult:
    """Call a service handler as the router would."""
    request = DeviceRequest(
        topic=topic,
        payload=payload,
        identity=identity,
        client_id="dev-client",  # type: ignore[arg-type]
        qos=1,
        topic_params=params,
    )
    return await handler(request)  # type: ignore[operator, no-any-return]


def lantern_cli(proc: LanternProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `lantern` command against ``proc``'s data directory, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args],
        env=proc.command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def claim_files(proc: LanternProcess, out: Path, *options: str) -> Claim:
    """A claim for DefaultProvisioningTemplate made with `lantern claims create [options]
    --out out` against ``proc``'s data directory."""
    done = lantern_cli(
        proc,
        "claims",
        "create",
        "--template",
        "DefaultProvisioningTemplate",
        *options,
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    return Claim(cert, cert.with_suffix(".key"), out / "ca.pem")


def provision_device(
    server: LanternProcess, claim: Claim, directory: Path, serial: str = "7"
) -> tuple[ProvisionResult, ClientFiles]:
    """Provision a device against ``server`` with ``claim`` (DefaultProvisioningTemplate, as
    ``lantern device provision`` does) and write its certificate and key into ``directory``."""
    result = provision(
        Endpoint("localhost", server.mqtt_port),
        ca_file=claim.ca,
        claim_cert=claim.cert,
        claim_key=claim.key,
        parameters={"SerialNumber": serial, "Manufacturer": "acme", "Name": "n", "Model": "m"},
    )
    cert, key = write_credentials(result, directory)
    return result, ClientFiles(cert, key, claim.ca)
