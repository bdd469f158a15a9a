"""A live connection whose device certificate expires is closed at expiry by `lantern serve`
(MQTT 5 DISCONNECT 0x98, 3.1.1 closed), and the certificate cannot connect again."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from lantern.gateway.authn import GatewayAuthenticator
from lantern.gateway.authorizer import GatewayAuthorizer
from lantern.mqtt.hooks import ConnectInfo
from lantern.pki import CertificateAuthority, IssuedCertificate, KeyType
from lantern.provisioning.admin import register_device_certificate
from lantern.store import Database
from support.mqtt_server import Client, ClientFiles, reason_value
from support.process import LanternProcess

LIFETIME = 4.0  # seconds from issuing (registration and connecting happen meanwhile)


async def register(data_dir: Path, things: dict[str, IssuedCertificate]) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}")
    try:
        for thing, issued in things.items():
            await register_device_certificate(db, thing, issued)
    finally:
        await db.close()


def files(issued: IssuedCertificate, directory: Path, ca_file: Path) -> ClientFiles:
    cert, key = (
        directory / f"{issued.certificate_id}.pem",
        directory / f"{issued.certificate_id}.key",
    )
    cert.write_text(issued.certificate_pem)
    assert issued.private_key_pem is not None
    key.write_text(issued.private_key_pem)
    return ClientFiles(cert, key, ca_file)


def test_expiring_device_certificates_are_disconnected_at_expiry(
    data_dir: Path, tmp_path: Path
) -> None:
    env = {"LANTERN_PROVISIONING__KEY_POOL_SIZE": "0"}
    with LanternProcess(data_dir, env=env) as proc:
        ca, _ = CertificateAuthority.load_or_create(data_dir / "ca")
        issued = {
            name: ca.issue(name, KeyType.EC_P256, days=LIFETIME / 86400)
            for name in ("short-v5", "short-v4")
        }
        expires = min(i.certificate.not_valid_after_utc for i in issued.values())
        asyncio.run(register(data_dir, issued))
        v5 = Client(
            proc.mqtt_port, files(issued["short-v5"], tmp_path, proc.ca_file), "short-v5", 5
        )
        v4 = Client(
            proc.mqtt_port, files(issued["short-v4"], tmp_path, proc.ca_file), "short-v4", 4
        )
        v5.connect(keepalive=60)
        v4.connect(keepalive=60)
        assert dt.datetime.now(dt.UTC) < expires  # connected before expiry
        rc5 = v5.disconnects.get(timeout=LIFETIME + 5)
        closed_at = dt.datetime.now(dt.UTC)
        rc4 = v4.disconnects.get(timeout=5)
        lag = (closed_at - expires).total_seconds()
        print(f"disconnected {lag:+.2f} s after the certificate's notAfter")
        assert reason_value(rc5) == 0x98
        assert reason_value(rc4) != 0  # 3.1.1: the connection was closed under it
        # notAfter has a one-second resolution; the server closes at it, not before.
        assert -1.0 < lag < 1.5
        v5.paho.loop_stop()
        v4.paho.loop_stop()
        # A fresh connection with the expired certificate is refused: the server's TLS
        # handshake checks the validity period (with TLS 1.3 the client learns it only after
        # its side of the handshake: no CONNACK, the connection is closed).
        again = Client(proc.mqtt_port, v5.files, "short-v5", 5)
        try:
            again.paho.connect("127.0.0.1", proc.mqtt_port, keepalive=60)
            again.paho.loop_start()
            again.disconnects.get(timeout=5)
        except (ssl.SSLError, OSError):
            pass  # refused during connect() itself (TLS 1.2)
        assert again.connack.empty()
        again.paho.loop_stop()
    assert "credentials expired" in proc.output


async def test_the_authenticator_says_until_when_a_certificate_is_valid(
    sqlite_db: Database, tmp_path: Path
) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "ca")
    issued = ca.issue("dev", KeyType.EC_P256, days=30)
    await register_device_certificate(sqlite_db, "dev", issued)
    authn = GatewayAuthenticator(sqlite_db, ca, GatewayAuthorizer())
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    info = ConnectInfo("dev", None, None, der, (der,), "mqtts", "127.0.0.1:1", 5)
    result = await authn.authenticate(info)
    assert result.identity is not None
    assert result.valid_until == issued.certificate.not_valid_after_utc.timestamp()
    long_lived = ca.issue("old", KeyType.EC_P256, days=365 * 100)  # outlives the CA
    await register_device_certificate(sqlite_db, "old", long_lived)
    der = long_lived.certificate.public_bytes(serialization.Encoding.DER)
    info = ConnectInfo("old", None, None, der, (der,), "mqtts", "127.0.0.1:1", 5)
    result = await authn.authenticate(info)
    assert result.valid_until == ca.certificate.not_valid_after_utc.timestamp()
    authn.close()
