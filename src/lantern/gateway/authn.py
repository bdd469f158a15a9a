"""Connection authentication (implements :class:`lantern.mqtt.hooks.Authenticator`).

mTLS listeners: the client certificate must chain to the platform CA (TLS checked it; checked
again here) AND be in the registry: a claim certificate whose claim is not revoked, or a device
certificate that is ACTIVE and attached to a thing, connecting with the thing name as client id.
Anything else is refused with CONNACK 0x87 (3.1.1: return code 5). The MQTT username is
ignored on mTLS (the SDK builders put metrics in it, PROTOCOL.md §0-#8).

Plain TCP / WebSocket listeners: username and password against ``mqtt_users`` (0x86 when
wrong), or anonymous access where the operator enabled it for that listener.

On success the connection's policies are computed once and handed to the authorizer; a
certificate's connection is valid until the certificate (or the CA) expires
(``AuthResult.valid_until``: the server closes it then, MQTT 5 DISCONNECT 0x98).

Failed authentications are throttled (:mod:`lantern.gateway.throttle`): per source address and
per user name (mTLS: per certificate); a throttled attempt is refused at once with 0x8A Banned
(3.1.1: 5) without looking at its credentials. Password checks (scrypt) run on a bounded pool
(:mod:`lantern.gateway.password_pool`); when it is full the attempt gets 0x89 Server busy
(3.1.1: 3). Outcomes are counted in :class:`AuthStats` (exported as metrics).

Cost per CONNECT: the registry is read on every CONNECT (so a revoked or deactivated certificate
is refused at once, whichever process changed it) but as ONE job on the registry worker's
thread (a few cheap synchronous statements, one thread hop). The CA signature check of a
certificate is done once per certificate id and remembered (a certificate's signature never
changes; its validity period is still checked on every CONNECT).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Connection

from lantern.gateway.authorizer import GatewayAuthorizer, builtin_policy
from lantern.gateway.identity import (
    AnonymousIdentity,
    ClaimIdentity,
    ThingIdentity,
    UserIdentity,
)
from lantern.gateway.password_pool import PasswordChecker
from lantern.gateway.policy import CLIENT_ID_VAR, THING_NAME_VAR, PolicySet, compile_policy
from lantern.gateway.throttle import AuthStats, AuthThrottle, source_key
from lantern.mqtt.hooks import AuthResult, ConnectInfo
from lantern.mqtt.reason_codes import ReasonCode
from lantern.pki import CertificateAuthority, PKIError, certificate_id, load_certificate
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store import registry_access as acc
from lantern.store.registry_worker import RegistryWorker

__all__ = ["AuthStats", "GatewayAuthenticator"]

log = logging.getLogger(__name__)

_REFUSED = AuthResult(identity=None, reason_code=ReasonCode.NOT_AUTHORIZED)
# Certificates whose CA signature was checked, remembered at most (then forgotten, re-checked).
_VERIFIED_MAX = 100_000


@dataclass(frozen=True)
class _Lookup:
    """What the registry says about a certificate, read in one worker job."""

    record: reg.CertificateRecord | None
    claim: reg.ClaimRecord | None = None
    documents: tuple[dict[str, Any], ...] = ()


def _lookup(conn: Connection, cert_id: str) -> _Lookup:
    record = reg.get_certificate_sync(conn, cert_id)
    if record is None:
        return _Lookup(None)
    if record.kind == "claim":
        return _Lookup(record, claim=reg.get_claim_by_certificate_sync(conn, cert_id))
    if record.status != "ACTIVE" or record.thing_name is None:
        return _Lookup(record)
    policies = reg.connection_policies_sync(conn, record.project, cert_id)
    return _Lookup(record, documents=tuple(p.document for p in policies))


class GatewayAuthenticator:
    """Decides who a connecting client is, from the registry."""

    def __init__(
        self,
        db: Database,
        ca: CertificateAuthority,
        authorizer: GatewayAuthorizer,
        *,
        anonymous_listeners: Collection[str] = (),
        throttle: AuthThrottle | None = None,
        passwords: PasswordChecker | None = None,
    ) -> None:
        self.db = db
        self.ca = ca
        self.authorizer = authorizer
        self.anonymous_listeners = frozenset(anonymous_listeners)
        self.throttle = throttle if throttle is not None else AuthThrottle()
        self.passwords = passwords if passwords is not None else PasswordChecker()
        self.stats = AuthStats()
        self.worker = RegistryWorker.for_database(db)
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
            return AuthResult(identity=None, reason_code=ReasonCode.BANNED)
        try:
            if der is not None:
                result = await self._by_certificate(info, der)
            else:
                result = await self._by_password(info)
        except Exception:
            log.exception("authentication of client %r failed", info.client_id)
            result = AuthResult(identity=None, reason_code=ReasonCode.SERVER_UNAVAILABLE)
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

    def _claim_policy(self, claim: reg.ClaimRecord) -> PolicySet:
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
            log.info("refused %r: certificate not issued by the platform CA", info.client_id)
            return _REFUSED
        found = await self.worker.read(lambda conn: _lookup(conn, cert_id))
        record = found.record
        if record is None:
            log.info("refused %r: certificate %s is not registered", info.client_id, cert_id)
            return _REFUSED
        if record.kind == "claim":
            claim = found.claim
            if claim is None or claim.revoked_at is not None or record.status != "ACTIVE":
                log.info("refused %r: claim certificate %s is revoked", info.client_id, cert_id)
                return _REFUSED
            claim_identity = ClaimIdentity(
                certificate_id=cert_id,
                claim_id=claim.id,
                project=claim.project,
                allowed_templates=frozenset(claim.allowed_templates),
            )
            self.authorizer.remember(claim_identity, info.client_id, self._claim_policy(claim))
            return AuthResult(identity=claim_identity)
        if record.status != "ACTIVE" or record.thing_name is None:
            log.info(
                "refused %r: device certificate %s is %s",
                info.client_id,
                cert_id,
                record.status if record.thing_name else "not attached to a thing",
            )
            return _REFUSED
        thing = record.thing_name
        if info.client_id not in ("", thing):
            log.info(
                "refused %r: a device must use its thing name %r as client id",
                info.client_id,
                thing,
            )
            return _REFUSED
        identity = ThingIdentity(certificate_id=cert_id, thing_name=thing, project=record.project)
        documents = list(found.documents)
        variables = {THING_NAME_VAR: thing, CLIENT_ID_VAR: thing}
        extra = [compile_policy(d, variables) for d in documents]
        base = builtin_policy(identity, thing)
        self.authorizer.remember(identity, thing, PolicySet([*base.policies, *extra]))
        return AuthResult(
            identity=identity, assigned_client_id=thing if not info.client_id else None
        )

    async def _by_password(self, info: ConnectInfo) -> AuthResult:
        if info.username is None:
            if info.listener in self.anonymous_listeners:
                return AuthResult(identity=AnonymousIdentity(listener=info.listener))
            return AuthResult(identity=None, reason_code=ReasonCode.NOT_AUTHORIZED)
        async with self.db.connect() as conn:
            user = await acc.get_mqtt_user(conn, info.username)
            policy = (
                await acc.get_policy(conn, user.policy_name)
                if user is not None and user.policy_name
                else None
            )
        password = (info.password or b"").decode("utf-8", "replace")
        stored = user.password_hash if user is not None else _DUMMY_HASH
        # Verify even for unknown users so timing does not reveal which usernames exist.
        ok = await self.passwords.verify(password, stored)
        if ok is None:
            log.info("refused %r on %s: password checks are all busy", info.username, info.listener)
            return AuthResult(identity=None, reason_code=ReasonCode.SERVER_BUSY)
        if user is None or not ok or user.disabled_at is not None:
            log.info("refused %r on %s: bad username or password", info.username, info.listener)
            return AuthResult(identity=None, reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        identity = UserIdentity(username=user.username, project=user.project)
        variables = {THING_NAME_VAR: None, CLIENT_ID_VAR: info.client_id or None}
        documents = [policy.document] if policy is not None else []
        self.authorizer.remember(
            identity, info.client_id, PolicySet.from_documents(documents, variables)
        )
        return AuthResult(identity=identity)


_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)
