"""Authentication from the registry: claim and device certificates, client id binding, users,
anonymous listeners; and the revocation watcher closing live connections. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lantern.gateway import AnonymousIdentity, ClaimIdentity, ThingIdentity, UserIdentity
from lantern.gateway.accounts import AccountError, create_mqtt_user, put_policy
from lantern.gateway.authn import GatewayAuthenticator
from lantern.gateway.authorizer import GatewayAuthorizer
from lantern.gateway.passwords import hash_password, verify_password
from lantern.gateway.revocation import RevocationWatcher
from lantern.mqtt.hooks import AuthResult, ClientHandle, ConnectInfo
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode
from lantern.pki import CertificateAuthority, IssuedCertificate, KeyType
from lantern.provisioning.admin import create_claim, revoke_claim, set_certificate_status
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.registry import access as acc


@dataclass
class Env:
    db: Database
    ca: CertificateAuthority
    authorizer: GatewayAuthorizer
    authn: GatewayAuthenticator


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"))[0]


@pytest.fixture
async def env(db: Database, ca: CertificateAuthority) -> AsyncIterator[Env]:
    """An authenticator on a fresh registry: SQLite, then PostgreSQL (the ``db`` fixture)."""
    authorizer = GatewayAuthorizer()
    yield Env(
        db, ca, authorizer, GatewayAuthenticator(db, ca, authorizer, anonymous_listeners=["ws"])
    )


def der(issued: IssuedCertificate) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


def info(
    client_id: str,
    cert: bytes | None = None,
    *,
    listener: str = "mqtts",
    username: str | None = None,
    password: bytes | None = None,
) -> ConnectInfo:
    return ConnectInfo(
        client_id=client_id,
        username=username,
        password=password,
        peer_cert_der=cert,
        peer_chain_der=(cert,) if cert else (),
        listener=listener,
        remote_address="127.0.0.1:5",
        protocol_level=5,
    )


async def add_device(env: Env, thing: str, status: str = "ACTIVE") -> IssuedCertificate:
    issued = env.ca.issue("dev", KeyType.EC_P256)
    now = time.time()
    async with env.db.transaction() as conn:
        await reg.insert_thing(
            conn, reg.ThingRecord(thing, "default", {}, None, None, None, None, None, now, now)
        )
        await reg.insert_certificate(
            conn,
            reg.CertificateRecord(
                issued.certificate_id,
                issued.certificate_pem,
                "device",
                status,
                "default",
                thing,
                now,
                now,
            ),
        )
    return issued


def refused(result: AuthResult, code: ReasonCode = ReasonCode.NOT_AUTHORIZED) -> bool:
    return result.identity is None and result.reason_code == code


async def test_claim_certificate_connects_until_revoked(env: Env) -> None:
    claim, issued = await create_claim(env.db, env.ca, ["DefaultProvisioningTemplate"])
    result = await env.authn.authenticate(info("any-client", der(issued)))
    assert result.identity == ClaimIdentity(
        issued.certificate_id, claim.id, "default", frozenset({"DefaultProvisioningTemplate"})
    )
    await revoke_claim(env.db, claim.id)
    assert refused(await env.authn.authenticate(info("any-client", der(issued))))


async def test_device_certificate_must_be_active_and_use_its_thing_name(env: Env) -> None:
    issued = await add_device(env, "dev1")
    result = await env.authn.authenticate(info("dev1", der(issued), username="?SDK=PythonV2"))
    assert result.identity == ThingIdentity(issued.certificate_id, "dev1", "default")
    assert refused(await env.authn.authenticate(info("dev2", der(issued))))
    empty = await env.authn.authenticate(info("", der(issued)))
    assert empty.identity is not None and empty.assigned_client_id == "dev1"
    await set_certificate_status(env.db, issued.certificate_id, "INACTIVE")
    assert refused(await env.authn.authenticate(info("dev1", der(issued))))
    await set_certificate_status(env.db, issued.certificate_id, "ACTIVE")
    assert (await env.authn.authenticate(info("dev1", der(issued)))).identity is not None
    await set_certificate_status(env.db, issued.certificate_id, "REVOKED")
    assert refused(await env.authn.authenticate(info("dev1", der(issued))))


async def test_pending_unknown_and_foreign_certificates_are_refused(
    env: Env, tmp_path: Path
) -> None:
    pending = await add_device(env, "dev3", status="PENDING_ACTIVATION")
    assert refused(await env.authn.authenticate(info("dev3", der(pending))))
    unregistered = env.ca.issue("x", KeyType.EC_P256)
    assert refused(await env.authn.authenticate(info("x", der(unregistered))))
    other_ca, _ = CertificateAuthority.load_or_create(tmp_path / "other")
    assert refused(
        await env.authn.authenticate(info("x", der(other_ca.issue("x", KeyType.EC_P256))))
    )
    assert refused(await env.authn.authenticate(info("x", b"not a certificate")))


async def test_project_and_attached_policies_extend_a_device(env: Env) -> None:
    issued = await add_device(env, "dev4")
    await put_policy(
        env.db,
        "fleet",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Publish",
                    "Resource": "topic/fleet/${iot:Connection.Thing.ThingName}",
                }
            ]
        },
        project_wide=True,
    )
    await put_policy(
        env.db,
        "extra",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": "topicfilter/broadcast/#",
                }
            ]
        },
    )
    async with env.db.transaction() as conn:
        await acc.attach_policy(conn, issued.certificate_id, "extra")
    result = await env.authn.authenticate(info("dev4", der(issued)))
    client = Handle("dev4", result.identity)
    assert env.authorizer.may_publish(client, "fleet/dev4")
    assert not env.authorizer.may_publish(client, "fleet/dev5")
    assert env.authorizer.may_subscribe(client, "broadcast/#")
    assert env.authorizer.may_publish(client, "dev4/x")  # the built-in rights stay


async def test_users_by_password_and_anonymous_only_where_enabled(env: Env) -> None:
    await put_policy(
        env.db,
        "dash",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iot:Subscribe", "iot:Receive"],
                    "Resource": ["topicfilter/+/data", "topic/*"],
                }
            ]
        },
    )
    with pytest.raises(AccountError, match="at least 12"):
        await create_mqtt_user(env.db, "dashboard", "short")
    with pytest.raises(AccountError, match="does not exist"):
        await create_mqtt_user(env.db, "dashboard", "a-long-password", policy_name="nope")
    await create_mqtt_user(env.db, "dashboard", "a-long-password", policy_name="dash")
    ok = await env.authn.authenticate(
        info("d", listener="tcp", username="dashboard", password=b"a-long-password")
    )
    assert ok.identity == UserIdentity("dashboard", "default")
    client = Handle("d", ok.identity)
    assert env.authorizer.may_subscribe(client, "+/data")
    assert not env.authorizer.may_publish(client, "dev1/data")
    bad = ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert refused(
        await env.authn.authenticate(
            info("d", listener="tcp", username="dashboard", password=b"wrong-password")
        ),
        bad,
    )
    assert refused(
        await env.authn.authenticate(
            info("d", listener="tcp", username="ghost", password=b"a-long-password")
        ),
        bad,
    )
    assert refused(await env.authn.authenticate(info("d", listener="tcp")))
    anon = await env.authn.authenticate(info("d", listener="ws"))
    assert anon.identity == AnonymousIdentity("ws")


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first)
    assert not verify_password("wrong", first)
    assert not verify_password("correct horse", "garbage")


@dataclass
class Handle:
    client_id: str
    identity: object
    protocol_level: int = 5
    closed: list[ReasonCode] = field(default_factory=list)

    def deliver(
        self, topic: str, payload: bytes, qos: int = 0, properties: Properties = EMPTY_PROPERTIES
    ) -> None: ...

    def close(self, reason_code: ReasonCode) -> None:
        self.closed.append(reason_code)


@dataclass
class FakeServer:
    handles: list[Handle]
    kicked: asyncio.Event = field(default_factory=asyncio.Event)

    def disconnect_clients(
        self, predicate: Callable[[ClientHandle], bool], reason_code: ReasonCode
    ) -> int:
        chosen = [h for h in self.handles if not h.closed and predicate(h)]
        for h in chosen:
            h.close(reason_code)
        if chosen:
            self.kicked.set()
        return len(chosen)


async def test_deactivating_a_certificate_closes_its_connections_within_a_second(env: Env) -> None:
    issued = await add_device(env, "dev6")
    other = await add_device(env, "dev7")
    victim = Handle("dev6", ThingIdentity(issued.certificate_id, "dev6", "default"))
    bystander = Handle("dev7", ThingIdentity(other.certificate_id, "dev7", "default"))
    server = FakeServer([victim, bystander])
    watcher = RevocationWatcher(env.db, server, interval=0.1)
    watcher.start()
    try:
        await set_certificate_status(env.db, issued.certificate_id, "INACTIVE")
        await asyncio.wait_for(server.kicked.wait(), 1.0)
    finally:
        await watcher.stop()
    assert victim.closed == [ReasonCode.ADMINISTRATIVE_ACTION]
    assert bystander.closed == []
