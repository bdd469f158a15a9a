"""Connection authentication (implements :class:`lantern.mqtt.hooks.Authenticator`).

mTLS listeners: the client certificate must chain to the platform CA (TLS checked it; checked
again here) AND be in the registry: a claim certificate whose claim is not revoked, or a device
certificate that is ACTIVE and attached to a thing, connecting with the thing name as client id.
Anything else is refused with CONNACK 0x87 (3.1.1: return code 5). The MQTT username is
ignored on mTLS (the SDK builders put metrics in it).

Sessions belong to principals (``AuthResult.principal``): a thing (whichever of its
certificates), a claim, an MQTT user, the anonymous clients of one listener. Only a thing's own
certificate may use its thing name as client id: a claim, an MQTT user or an anonymous client
presenting a registered thing name is refused with 0x87, and the MQTT server refuses a client
id whose live or persisted session belongs to another principal. Claim connections never get a
persistent session.

Plain TCP / WebSocket listeners: username and password against ``mqtt_users`` (0x86 when
wrong), or anonymous access where the operator enabled it for that listener: with the stored
policy named ``anonymous_policy`` (read at every anonymous CONNECT, so ``lantern policies put``
applies to the next connection; refused with 0x87 if it no longer exists), else the default
anonymous access (see :mod:`lantern.gateway.authorizer`). Neither a user nor an anonymous client
may use a registered thing's name as client id (0x87; checked after the password). An empty
client id is assigned here (``auto-<hex>``), so the policies remembered for the connection are
found under the id it really gets.

On success the connection's policies are computed once and handed to the authorizer; a
certificate's connection is valid until the certificate (or the CA) expires
(``AuthResult.valid_until``: the server closes it then, MQTT 5 DISCONNECT 0x98).

Failed authentications are throttled (:mod:`lantern.gateway.throttle`): per source address and
per user name (mTLS: per certificate); a throttled attempt is refused at once with 0x8A Banned
(3.1.1: 5) without looking at its credentials. Password checks (scrypt) run on a bounded pool
(:mod:`lantern.gateway.password_pool`); when it is full the attempt gets 0x89 Server busy
(3.1.1: 3). Outcomes are counted in :class:`AuthStats` (exported as metrics).

Cost per CONNECT: the registry is read on every CONNECT (so a revoked or deactivated certificate
is refused at once, whichever process changed it) but as ONE unit of work of the registry port
(:class:`~lantern.store.registry.RegistryUnits`: on a SQLite file, a few prepared statements on
the database's writer thread, one thread hop). The CA signature check of a
certificate is done once per certificate id and remembered (a certificate's signature never
changes; its validity period is still checked on every CONNECT).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from lantern.gateway.authorizer import GatewayAuthorizer, builtin_policy
from lantern.gateway.identity import (
    AnonymousIdentity,
    ClaimIdentity,
    ThingIdentity,
    UserIdentity,
)
from lantern.gateway.password_pool import PasswordChecker
from lantern.gateway.policy import CLIENT_ID_VAR, THING_NAME_VAR, PolicySet, compile_policy
from lantern.gateway.things import ThingNames
from lantern.gateway.throttle import AuthStats, AuthThrottle, source_key
from lantern.mqtt.hooks import AuthResult, ConnectInfo
from lantern.mqtt.reason_codes import ReasonCode
from lantern.pki import CertificateAuthority, PKIError, certificate_id, load_certificate
from lantern.store import Database
from lantern.store.registry import (
    CertificateRecord,
    ClaimRecord,
    MqttUserRecord,
    PolicyRecord,
    RegistryStore,
    RegistryUnitOfWork,
    RegistryUnits,
)

__all__ = ["AuthStats", "GatewayAuthenticator"]

log = logging.getLogger(__name__)


def _refused(reason: str, code: ReasonCode = ReasonCode.NOT_AUTHORIZED) -> AuthResult:
    """A refusal; ``reason`` goes to the server's (rate-limited) log of refused CONNECTs."""
    return AuthResult(identity=None, reason_code=code, reason=reason)


# Certificates whose CA signature was checked, remembered at most (then forgotten, re-checked).
_VERIFIED_MAX = 100_000


@dataclass(frozen=True)
class _Lookup:
    """What the registry says about a certificate, read in one unit of work."""

    record: CertificateRecord | None
    claim: ClaimRecord | None = None
    documents: tuple[dict[str, Any], ...] = ()
    client_id_is_thing: bool = False  # (claims) the client id is a registered thing name


def _lookup(uow: RegistryUnitOfWork, cert_id: str, client_id: str) -> _Lookup:
    record = uow.certificate(cert_id)
    if record is None:
        return _Lookup(None)
    if record.kind == "claim":
        return _Lookup(
            record,
            claim=uow.claim_of_certificate(cert_id),
            client_id_is_thing=bool(client_id) and uow.thing(client_id) is not None,
        )
    if record.status != "ACTIVE" or record.thing_name is None:
        return _Lookup(record)
    policies = uow.connection_policies(record.project, cert_id)
    return _Lookup(record, documents=tuple(p.document for p in policies))


def _user_and_policy(
    uow: RegistryUnitOfWork, username: str
) -> tuple[MqttUserRecord | None, PolicyRecord | None]:
    user = uow.mqtt_user(username)
    if user is None or not user.policy_name:
        return user, None
    return user, uow.policy(user.policy_name)


class GatewayAuthenticator:
    """Decides who a connecting client is, from the registry (``units``; by default the
    database's :class:`~lantern.store.registry.RegistryStore`)."""

    def __init__(
        self,
        db: Database,
        ca: CertificateAuthority,
        authorizer: GatewayAuthorizer,
        *,
        anonymous_listeners: Collection[str] = (),
        anonymous_policy: str | None = None,
        thing_names: ThingNames | None = None,
        throttle: AuthThrottle | None = None,
        passwords: PasswordChecker | None = None,
        units: RegistryUnits | None = None,
    ) -> None:
        self.db = db
        self.units = units if units is not None else RegistryStore(db.transactions)
        self.ca = ca
        self.authorizer = authorizer
        self.anonymous_listeners = frozenset(anonymous_listeners)
        self.anonymous_policy = anonymous_policy
        # One set for both hooks (the authorizer's default anonymous access reads it too).
        names = thing_names if thing_names is not None else authorizer.thing_names
        if names is None:
            names = ThingNames(db, units=self.units)
        self.thing_names = names
        if authorizer.thing_names is None:
            authorizer.thing_names = names
        self.throttle = throttle if throttle is not None else AuthThrottle()
        self.passwords = passwords if passwords is not None else PasswordChecker()
        self.stats = AuthStats()
        # certificate id -> validity period, for certificates whose CA signature checked out
        self._verified: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        self._claim_policies: dict[frozenset[str], PolicySet] = {}

    async def authenticate(self, info: ConnectInfo) -> AuthResult:
        der = info.peer_cert_der
        address = source_key(info.remote_address)
        cert_id = certificate_id(der) if der is not None else None
        if cert_id is not None:
            who: str | None = "certificate:" + cert_id
        else:
            who = None if info.username is None else "user:" + info.username
        throttled = self.throttle.refused(address, who)
        if throttled is not None:
            self.stats.throttled[throttled] += 1  # logged once, when the block started
            return _refused(f"too many failed authentications ({throttled})", ReasonCode.BANNED)
        try:
            if der is not None:
                result = await self._by_certificate(info, der)
            else:
                result = await self._by_password(info)
        except Exception:
            log.exception("authentication of client %r failed", info.client_id)
            result = _refused("authentication failed (error logged)", ReasonCode.SERVER_UNAVAILABLE)
        if result.identity is not None:
            self.throttle.succeeded(who)
            if der is not None and cert_id is not None:
                result = replace(result, valid_until=self._valid_until(der, cert_id))
            return result
        code = result.reason_code
        if code == ReasonCode.SERVER_BUSY:
            self.stats.failures["busy"] += 1
        elif code == ReasonCode.SERVER_UNAVAILABLE:
            self.stats.failures["error"] += 1
        else:
            kind = "certificate" if der is not None else "password" if who else "anonymous"
            self.stats.failures[kind] += 1
            for scope in self.throttle.failed(address, who):
                log.warning(
                    "too many failed MQTT authentications of %s: refusing it for up to %g s",
                    address if scope == "address" else who,
                    self.throttle.window,
                )
        return result

    def close(self) -> None:
        """Stop the password checking threads."""
        self.passwords.close()

    def _valid_until(self, der: bytes, cert_id: str) -> float:
        """When an accepted certificate stops being valid (epoch seconds): its own end, or
        the platform CA's if that comes first. The server closes the connection then."""
        period = self._verified.get(cert_id)
        end = period[1] if period is not None else load_certificate(der).not_valid_after_utc
        return min(end, self.ca.certificate.not_valid_after_utc).timestamp()

    def _claim_policy(self, claim: ClaimRecord) -> PolicySet:
        """The built-in policy of a claim connection: it depends only on the claim's templates
        (not on the client id), so it is compiled once per set of templates."""
        templates = frozenset(claim.allowed_templates)
        policy = self._claim_policies.get(templates)
        if policy is None:
            if len(self._claim_policies) >= _VERIFIED_MAX:
                self._claim_policies.clear()
            identity = ClaimIdentity("", claim.id, claim.project, templates)
            policy = self._claim_policies[templates] = builtin_policy(identity, "")
        return policy

    def _issued_by_us(self, der: bytes, cert_id: str) -> bool:
        """The certificate chains to the platform CA and is within its validity period."""
        period = self._verified.get(cert_id)
        if period is None:
            try:
                cert = load_certificate(der)
            except PKIError:
                return False
            if not self.ca.verify_issued(cert):
                return False
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            period = self._verified[cert_id] = (cert.not_valid_before_utc, cert.not_valid_after_utc)
        return period[0] <= dt.datetime.now(dt.UTC) <= period[1]

    async def _by_certificate(self, info: ConnectInfo, der: bytes) -> AuthResult:
        cert_id = certificate_id(der)
        if not self._issued_by_us(der, cert_id):
            return _refused("certificate not issued by the platform CA or outside its validity")
        client_id = info.client_id
        found = await self.units.read(lambda uow: _lookup(uow, cert_id, client_id))
        record = found.record
        if record is None:
            return _refused(f"certificate {cert_id} is not registered")
        if record.kind == "claim":
            claim = found.claim
            if claim is None or claim.revoked_at is not None or record.status != "ACTIVE":
                return _refused(f"claim certificate {cert_id} is revoked")
            if found.client_id_is_thing:
                return _refused(
                    f"claim {claim.id} may not use a registered thing name as client id"
                )
            claim_identity = ClaimIdentity(
                certificate_id=cert_id,
                claim_id=claim.id,
                project=claim.project,
                allowed_templates=frozenset(claim.allowed_templates),
            )
            self.authorizer.remember(claim_identity, info.client_id, self._claim_policy(claim))
            # A claim is shared by a whole factory line: its sessions never outlive the
            # connection, so nothing (an identity-API reply with a private key) is resumed.
            return AuthResult(
                identity=claim_identity,
                principal=("claim", claim.id),
                persistent_session=False,
            )
        if record.status != "ACTIVE" or record.thing_name is None:
            state = record.status if record.thing_name else "not attached to a thing"
            return _refused(f"device certificate {cert_id} is {state}")
        thing = record.thing_name
        if info.client_id not in ("", thing):
            return _refused(f"a device must use its thing name {thing!r} as client id")
        identity = ThingIdentity(certificate_id=cert_id, thing_name=thing, project=record.project)
        self.thing_names.add(thing)  # before it can publish: its topics are a device's
        documents = list(found.documents)
        variables = {THING_NAME_VAR: thing, CLIENT_ID_VAR: thing}
        extra = [compile_policy(d, variables) for d in documents]
        base = builtin_policy(identity, thing)
        self.authorizer.remember(identity, thing, PolicySet([*base.policies, *extra]))
        return AuthResult(
            identity=identity,
            assigned_client_id=thing if not info.client_id else None,
            principal=("thing", record.project, thing),  # any of the thing's certificates
        )

    async def _reserved_client_id(self, info: ConnectInfo) -> bool:
        """Is the client id a registered thing's (refused to users and anonymous clients)?"""
        await self.thing_names.ensure_loaded()
        return bool(info.client_id) and info.client_id in self.thing_names

    async def _anonymous(self, info: ConnectInfo) -> AuthResult:
        identity = AnonymousIdentity(listener=info.listener)
        principal = ("anonymous", info.listener)
        if self.anonymous_policy is None:
            return AuthResult(identity=identity, principal=principal)
        name = self.anonymous_policy
        policy = await self.units.read(lambda uow: uow.policy(name))
        if policy is None:
            log.error(
                "refused an anonymous client on %s: provisioning.anonymous_policy %r no longer "
                "exists (create it with `lantern policies put`)",
                info.listener,
                self.anonymous_policy,
            )
            return _refused("provisioning.anonymous_policy no longer exists")
        client_id = info.client_id or f"auto-{uuid.uuid4().hex}"
        variables = {THING_NAME_VAR: None, CLIENT_ID_VAR: client_id}
        self.authorizer.remember(
            identity, client_id, PolicySet.from_documents([policy.document], variables)
        )
        return AuthResult(
            identity=identity,
            assigned_client_id=None if info.client_id else client_id,
            principal=principal,
        )

    async def _by_password(self, info: ConnectInfo) -> AuthResult:
        if info.username is None:
            if info.listener not in self.anonymous_listeners:
                return _refused("no user name or certificate (anonymous access is off here)")
            if await self._reserved_client_id(info):
                return _refused("the client id is a thing's (only its certificate may use it)")
            return await self._anonymous(info)
        username = info.username
        user, policy = await self.units.read(lambda uow: _user_and_policy(uow, username))
        password = (info.password or b"").decode("utf-8", "replace")
        stored = user.password_hash if user is not None else _DUMMY_HASH
        # Verify even for unknown users so timing does not reveal which usernames exist.
        ok = await self.passwords.verify(password, stored)
        if ok is None:
            return _refused("password checks are all busy", ReasonCode.SERVER_BUSY)
        if user is None or not ok or user.disabled_at is not None:
            return _refused(
                f"bad user name or password (user {info.username!r})",
                ReasonCode.BAD_USER_NAME_OR_PASSWORD,
            )
        # Only after the password: an unauthenticated client learns nothing about thing names.
        if await self._reserved_client_id(info):
            return _refused("the client id is a thing's (only its certificate may use it)")
        identity = UserIdentity(username=user.username, project=user.project)
        client_id = info.client_id or f"auto-{uuid.uuid4().hex}"
        variables = {THING_NAME_VAR: None, CLIENT_ID_VAR: client_id}
        documents = [policy.document] if policy is not None else []
        self.authorizer.remember(
            identity, client_id, PolicySet.from_documents(documents, variables)
        )
        return AuthResult(
            identity=identity,
            assigned_client_id=None if info.client_id else client_id,
            principal=("user", user.username),
        )


_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)
