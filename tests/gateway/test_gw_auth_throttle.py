"""The authenticator throttles failed authentications (passwords and certificates), bounds its
password checks, and counts both; in-process, against a real registry."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lantern.gateway import password_pool
from lantern.gateway.accounts import create_mqtt_user
from lantern.gateway.authn import GatewayAuthenticator
from lantern.gateway.authorizer import GatewayAuthorizer
from lantern.gateway.password_pool import PasswordChecker
from lantern.gateway.throttle import AuthThrottle
from lantern.mqtt.hooks import AuthResult, ConnectInfo
from lantern.mqtt.reason_codes import ReasonCode
from lantern.pki import CertificateAuthority, KeyType
from lantern.store import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await create_mqtt_user(db, "alice", "alice-password")
    await create_mqtt_user(db, "bob", "bob-password")
    yield db
    await db.close()


def authenticator(
    db: Database, ca: CertificateAuthority | None = None, **limits: int
) -> GatewayAuthenticator:
    return GatewayAuthenticator(
        db,
        ca if ca is not None else object(),  # type: ignore[arg-type]
        GatewayAuthorizer(),
        throttle=AuthThrottle(window=60, **limits),
    )


def info(
    user: str | None, password: str = "", address: str = "10.0.0.1:4000", cert: bytes | None = None
) -> ConnectInfo:
    return ConnectInfo(
        client_id="c",
        username=user,
        password=password.encode(),
        peer_cert_der=cert,
        peer_chain_der=(),
        listener="tcp",
        remote_address=address,
        protocol_level=5,
    )


def code(result: AuthResult) -> ReasonCode:
    return result.reason_code if result.identity is None else ReasonCode.SUCCESS


async def test_a_user_name_is_refused_everywhere_after_its_failures(db: Database) -> None:
    authn = authenticator(db, max_per_user=3, max_per_address=100)
    for _ in range(3):
        assert code(await authn.authenticate(info("alice", "guess"))) == 0x86
    # Even the right password is refused now, without being checked, from any address.
    assert code(await authn.authenticate(info("alice", "alice-password"))) == 0x8A
    assert code(await authn.authenticate(info("alice", "alice-password", "10.9.9.9:1"))) == 0x8A
    assert code(await authn.authenticate(info("bob", "bob-password"))) == 0  # others are not
    assert authn.stats.failures["password"] == 3 and authn.stats.throttled["user"] == 2
    authn.close()


async def test_a_success_clears_the_user_name_failures(db: Database) -> None:
    authn = authenticator(db, max_per_user=3, max_per_address=100)
    for _ in range(5):
        for _ in range(2):
            assert code(await authn.authenticate(info("alice", "typo"))) == 0x86
        assert code(await authn.authenticate(info("alice", "alice-password"))) == 0
    authn.close()


async def test_an_address_is_refused_after_its_failures_whatever_the_user(db: Database) -> None:
    authn = authenticator(db, max_per_user=100, max_per_address=3)
    for user in ("alice", "bob", "nobody"):
        assert code(await authn.authenticate(info(user, "guess"))) == 0x86
    assert code(await authn.authenticate(info("bob", "bob-password"))) == 0x8A
    assert code(await authn.authenticate(info(None))) == 0x8A
    assert code(await authn.authenticate(info("bob", "bob-password", "10.0.0.2:1"))) == 0
    assert authn.stats.throttled["address"] == 2
    authn.close()


async def test_refused_certificates_are_throttled_too(db: Database, tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "ca")
    unregistered = ca.issue("stranger", KeyType.EC_P256).certificate
    der = unregistered.public_bytes(serialization.Encoding.DER)
    authn = authenticator(db, ca, max_per_user=2, max_per_address=100)
    for _ in range(2):
        assert code(await authn.authenticate(info(None, cert=der))) == 0x87
    assert code(await authn.authenticate(info(None, cert=der, address="10.5.5.5:1"))) == 0x8A
    assert authn.stats.failures["certificate"] == 2 and authn.stats.throttled["user"] == 1
    authn.close()


async def test_password_checks_over_the_queue_get_server_busy(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = password_pool.verify_password

    def held(password: str, stored: str) -> bool:
        gate.wait(5)
        return real(password, stored)

    monkeypatch.setattr(password_pool, "verify_password", held)
    authn = GatewayAuthenticator(
        db,
        object(),  # type: ignore[arg-type]
        GatewayAuthorizer(),
        passwords=PasswordChecker(threads=1, max_pending=1),
    )
    try:
        first = asyncio.ensure_future(authn.authenticate(info("alice", "alice-password")))
        await asyncio.sleep(0.1)
        busy = await authn.authenticate(info("bob", "bob-password", "10.0.0.7:1"))
        assert code(busy) == ReasonCode.SERVER_BUSY
        gate.set()
        assert code(await first) == 0
        assert authn.stats.failures["busy"] == 1 and authn.stats.failures["password"] == 0
    finally:
        gate.set()
        authn.close()
