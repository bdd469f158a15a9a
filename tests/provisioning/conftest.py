"""Fixtures for the provisioning service tests: a CA, a migrated database (SQLite and
PostgreSQL), a claim, a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from lantern.pki import CertificateAuthority
from lantern.provisioning.hook import PreProvisioningHook
from lantern.provisioning.service import ProvisioningService
from lantern.settings.provisioning import ProvisioningSettings
from lantern.store import Database
from support.process import LanternProcess
from support.provisioning_env import Claim, Env, FakeClock, lantern_cli


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    ca, _ = CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"))
    return ca


@pytest.fixture
async def env(db: Database, ca: CertificateAuthority) -> AsyncIterator[Env]:
    """The Identity API service on a fresh database: SQLite, then PostgreSQL (the ``db``
    fixture), with a claim for DefaultProvisioningTemplate."""
    clock = FakeClock()
    hook = PreProvisioningHook.open(timeout=0.5)
    service = ProvisioningService(
        db,
        ca,
        ProvisioningSettings(key_type="ec-p256", hook_timeout_seconds=0.5),
        hook=hook,
        clock=clock,
    )
    e = Env(db, ca, clock, service, claim=None)  # type: ignore[arg-type]
    e.claim = await e.new_claim()
    yield e
    await service.close()
    await hook.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    """One ``lantern serve`` for the end-to-end tests of this directory."""
    proc = LanternProcess(tmp_path_factory.mktemp("lantern") / "data")
    with proc:
        yield proc


@pytest.fixture(scope="session")
def claim(server: LanternProcess, tmp_path_factory: pytest.TempPathFactory) -> Claim:
    """A claim for DefaultProvisioningTemplate, created with `lantern claims create`."""
    out = tmp_path_factory.mktemp("claim")
    done = lantern_cli(
        server, "claims", "create", "--template", "DefaultProvisioningTemplate", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    return Claim(cert, cert.with_suffix(".key"), out / "ca.pem")
