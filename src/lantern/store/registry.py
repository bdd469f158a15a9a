"""Repository of the device registry (things, certificates, claims, templates, ownership tokens).

Every function takes an :class:`AsyncConnection` so callers choose the transaction. Read helpers
other services use (contract: registry_api.md): :func:`get_thing`, :func:`list_things`,
:class:`ThingRecord`. Policies and MQTT users are in :mod:`lantern.store.registry_access`.

The helpers of the provisioning and CONNECT hot path also exist as ``*_sync`` functions of a
synchronous :class:`~sqlalchemy.engine.Connection`, for jobs run by
:class:`lantern.store.registry_worker.RegistryWorker`; their async twins call them through
``run_sync`` (one implementation of each statement).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.registry_access import (  # re-exported: the provisioning worker uses them
    PolicyRecord,
    attach_policy_sync,
    get_policy_sync,
    policy_record,
    upsert_policy_sync,
)
from lantern.store.schema.registry import (
    certificate_policies,
    certificates,
    claims,
    ownership_tokens,
    policies,
    provisioning_templates,
    things,
)

__all__ = [
    "CERTIFICATE_STATUSES",
    "CertificateRecord",
    "ClaimRecord",
    "OwnershipTokenRecord",
    "TemplateRecord",
    "ThingRecord",
    "attach_policy_sync",
    "connection_policies_sync",
    "count_claim_devices",
    "count_claim_devices_sync",
    "delete_certificates",
    "delete_thing",
    "get_certificate",
    "get_certificate_sync",
    "get_claim",
    "get_claim_by_certificate",
    "get_claim_by_certificate_sync",
    "get_claim_sync",
    "get_policy_sync",
    "get_template",
    "get_template_sync",
    "get_thing",
    "get_thing_sync",
    "get_token",
    "get_token_sync",
    "insert_certificate",
    "insert_certificate_sync",
    "insert_claim",
    "insert_template",
    "insert_thing",
    "insert_thing_sync",
    "insert_token",
    "insert_token_sync",
    "list_certificates",
    "list_claims",
    "list_templates",
    "list_things",
    "live_claim_sync",
    "mark_token_used",
    "mark_token_used_sync",
    "revoke_claim",
    "set_certificate_status",
    "set_certificate_status_sync",
    "stale_pending_certificates",
    "update_template",
    "update_thing",
    "update_thing_sync",
    "upsert_policy_sync",
]

CERTIFICATE_STATUSES = ("PENDING_ACTIVATION", "ACTIVE", "INACTIVE", "REVOKED")


@dataclass(frozen=True)
class ThingRecord:
    name: str
    project: str
    attributes: dict[str, str]
    template_name: str | None
    serial_number: str | None
    manufacturer: str | None
    model: str | None
    device_name: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class CertificateRecord:
    id: str
    pem: str
    kind: str  # 'claim' | 'device'
    status: str
    project: str
    thing_name: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ClaimRecord:
    id: str
    certificate_id: str
    project: str
    description: str
    allowed_templates: tuple[str, ...]
    device_limit: int | None
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True)
class TemplateRecord:
    name: str
    project: str
    description: str
    enabled: bool
    body: dict[str, Any]
    pre_provisioning_hook_url: str | None
    version: int
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class OwnershipTokenRecord:
    token_hash: str
    certificate_id: str
    claim_id: str
    created_at: float
    expires_at: float
    used_at: float | None
    thing_name: str | None


def _thing(row: sa.Row[Any]) -> ThingRecord:
    return ThingRecord(
        name=row.name,
        project=row.project,
        attributes=dict(row.attributes or {}),
        template_name=row.template_name,
        serial_number=row.serial_number,
        manufacturer=row.manufacturer,
        model=row.model,
        device_name=row.device_name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _cert(row: sa.Row[Any]) -> CertificateRecord:
    return CertificateRecord(
        id=row.id,
        pem=row.pem,
        kind=row.kind,
        status=row.status,
        project=row.project,
        thing_name=row.thing_name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _claim(row: sa.Row[Any]) -> ClaimRecord:
    return ClaimRecord(
        id=row.id,
        certificate_id=row.certificate_id,
        project=row.project,
        description=row.description,
        allowed_templates=tuple(row.allowed_templates),
        device_limit=row.device_limit,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _template(row: sa.Row[Any]) -> TemplateRecord:
    return TemplateRecord(
        name=row.name,
        project=row.project,
        description=row.description,
        enabled=bool(row.enabled),
        body=dict(row.body),
        pre_provisioning_hook_url=row.pre_provisioning_hook_url,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# -- prebuilt hot-path statements ---------------------------------------------------------------
# Built once: SQLAlchemy then skips building the expression and its cache key on every call.
_THING_BY_NAME = sa.select(things).where(things.c.name == sa.bindparam("p_name"))
_INSERT_THING = sa.insert(things)
_CERT_BY_ID = sa.select(certificates).where(certificates.c.id == sa.bindparam("p_id"))
_INSERT_CERT = sa.insert(certificates)
_CLAIM_BY_ID = sa.select(claims).where(claims.c.id == sa.bindparam("p_id"))
_CLAIM_BY_CERT = sa.select(claims).where(claims.c.certificate_id == sa.bindparam("p_cert"))
_LIVE_CLAIM = (
    sa.select(claims)
    .join(certificates, certificates.c.id == claims.c.certificate_id)
    .where(claims.c.id == sa.bindparam("p_id"))
    .where(claims.c.certificate_id == sa.bindparam("p_cert"))
    .where(claims.c.revoked_at.is_(None))
    .where(certificates.c.status == "ACTIVE")
)
_CLAIM_DEVICES = (
    sa.select(sa.func.count())
    .select_from(ownership_tokens)
    .where(ownership_tokens.c.claim_id == sa.bindparam("p_claim"))
    .where(ownership_tokens.c.used_at.is_not(None))
)
_TEMPLATE_BY_NAME = sa.select(provisioning_templates).where(
    provisioning_templates.c.name == sa.bindparam("p_name")
)
_INSERT_TOKEN = sa.insert(ownership_tokens)
_TOKEN_BY_HASH = sa.select(ownership_tokens).where(
    ownership_tokens.c.token_hash == sa.bindparam("p_hash")
)
_USE_TOKEN = (
    sa.update(ownership_tokens)
    .where(ownership_tokens.c.token_hash == sa.bindparam("p_hash"))
    .where(ownership_tokens.c.used_at.is_(None))
    .values(used_at=sa.bindparam("p_now"), thing_name=sa.bindparam("p_thing"))
)
_SET_STATUS = (
    sa.update(certificates)
    .where(certificates.c.id == sa.bindparam("p_id"))
    .values(status=sa.bindparam("p_status"), updated_at=sa.bindparam("p_now"))
)
_SET_STATUS_AND_THING = _SET_STATUS.values(thing_name=sa.bindparam("p_thing"))


# -- things ------------------------------------------------------------------------------------
def get_thing_sync(conn: Connection, name: str) -> ThingRecord | None:
    row = conn.execute(_THING_BY_NAME, {"p_name": name}).first()
    return _thing(row) if row else None


async def get_thing(conn: AsyncConnection, name: str) -> ThingRecord | None:
    """The thing called ``name``, or None."""
    return await conn.run_sync(get_thing_sync, name)


async def list_things(
    conn: AsyncConnection,
    project: str | None = "default",
    *,
    template_name: str | None = None,
    limit: int = 1000,
    after: str | None = None,
) -> list[ThingRecord]:
    """Things ordered by name; ``project=None`` lists every project. ``after`` pages by name."""
    query = sa.select(things).order_by(things.c.name).limit(limit)
    if project is not None:
        query = query.where(things.c.project == project)
    if template_name is not None:
        query = query.where(things.c.template_name == template_name)
    if after is not None:
        query = query.where(things.c.name > after)
    return [_thing(r) for r in (await conn.execute(query)).all()]


def insert_thing_sync(conn: Connection, record: ThingRecord) -> None:
    # Parameters, not .values(): the compiled statement is cached across calls.
    conn.execute(_INSERT_THING, record.__dict__)


async def insert_thing(conn: AsyncConnection, record: ThingRecord) -> None:
    await conn.run_sync(insert_thing_sync, record)


def update_thing_sync(conn: Connection, name: str, **values: Any) -> None:
    conn.execute(sa.update(things).where(things.c.name == name).values(**values))


async def update_thing(conn: AsyncConnection, name: str, **values: Any) -> None:
    await conn.run_sync(lambda c: update_thing_sync(c, name, **values))


async def delete_thing(conn: AsyncConnection, name: str) -> bool:
    """Delete a thing (its certificates stay, detached). True if it existed."""
    result = await conn.execute(sa.delete(things).where(things.c.name == name))
    return bool(result.rowcount)


# -- certificates ------------------------------------------------------------------------------
def get_certificate_sync(conn: Connection, certificate_id: str) -> CertificateRecord | None:
    row = conn.execute(_CERT_BY_ID, {"p_id": certificate_id}).first()
    return _cert(row) if row else None


async def get_certificate(conn: AsyncConnection, certificate_id: str) -> CertificateRecord | None:
    return await conn.run_sync(get_certificate_sync, certificate_id)


async def list_certificates(
    conn: AsyncConnection,
    project: str | None = "default",
    *,
    kind: str | None = None,
    status: str | None = None,
    thing_name: str | None = None,
    limit: int = 1000,
) -> list[CertificateRecord]:
    query = sa.select(certificates).order_by(certificates.c.created_at).limit(limit)
    if project is not None:
        query = query.where(certificates.c.project == project)
    if kind is not None:
        query = query.where(certificates.c.kind == kind)
    if status is not None:
        query = query.where(certificates.c.status == status)
    if thing_name is not None:
        query = query.where(certificates.c.thing_name == thing_name)
    return [_cert(r) for r in (await conn.execute(query)).all()]


def insert_certificate_sync(conn: Connection, record: CertificateRecord) -> None:
    conn.execute(_INSERT_CERT, record.__dict__)


async def insert_certificate(conn: AsyncConnection, record: CertificateRecord) -> None:
    await conn.run_sync(insert_certificate_sync, record)


def set_certificate_status_sync(
    conn: Connection, certificate_id: str, status: str, now: float, thing_name: str | None = None
) -> bool:
    if status not in CERTIFICATE_STATUSES:
        raise ValueError(f"unknown certificate status {status!r}")
    params = {"p_id": certificate_id, "p_status": status, "p_now": now}
    if thing_name is None:
        result = conn.execute(_SET_STATUS, params)
    else:
        result = conn.execute(_SET_STATUS_AND_THING, {**params, "p_thing": thing_name})
    return bool(result.rowcount)


async def set_certificate_status(
    conn: AsyncConnection,
    certificate_id: str,
    status: str,
    now: float,
    *,
    thing_name: str | None = None,
) -> bool:
    """Change a certificate's status (and attach it to ``thing_name`` if given)."""
    return await conn.run_sync(set_certificate_status_sync, certificate_id, status, now, thing_name)


async def delete_certificates(conn: AsyncConnection, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    result = await conn.execute(sa.delete(certificates).where(certificates.c.id.in_(list(ids))))
    return int(result.rowcount or 0)


async def stale_pending_certificates(conn: AsyncConnection, now: float) -> list[str]:
    """Device certificates still PENDING_ACTIVATION, attached to no thing, whose every ownership
    token has expired unused: they must be deleted (AWS deletes them after the 1 h token)."""
    live = (
        sa.select(ownership_tokens.c.certificate_id)
        .where(ownership_tokens.c.certificate_id == certificates.c.id)
        .where(sa.or_(ownership_tokens.c.expires_at > now, ownership_tokens.c.used_at.is_not(None)))
    )
    query = (
        sa.select(certificates.c.id)
        .where(certificates.c.kind == "device")
        .where(certificates.c.status == "PENDING_ACTIVATION")
        .where(certificates.c.thing_name.is_(None))
        .where(~sa.exists(live))
    )
    return [r.id for r in (await conn.execute(query)).all()]


# -- claims ------------------------------------------------------------------------------------
def get_claim_sync(conn: Connection, claim_id: str) -> ClaimRecord | None:
    row = conn.execute(_CLAIM_BY_ID, {"p_id": claim_id}).first()
    return _claim(row) if row else None


async def get_claim(conn: AsyncConnection, claim_id: str) -> ClaimRecord | None:
    return await conn.run_sync(get_claim_sync, claim_id)


def get_claim_by_certificate_sync(conn: Connection, certificate_id: str) -> ClaimRecord | None:
    row = conn.execute(_CLAIM_BY_CERT, {"p_cert": certificate_id}).first()
    return _claim(row) if row else None


async def get_claim_by_certificate(
    conn: AsyncConnection, certificate_id: str
) -> ClaimRecord | None:
    return await conn.run_sync(get_claim_by_certificate_sync, certificate_id)


def live_claim_sync(conn: Connection, claim_id: str, certificate_id: str) -> ClaimRecord | None:
    """The claim if it is not revoked and its certificate ``certificate_id`` is ACTIVE (one
    statement), else None."""
    row = conn.execute(_LIVE_CLAIM, {"p_id": claim_id, "p_cert": certificate_id}).first()
    return _claim(row) if row else None


async def list_claims(conn: AsyncConnection, project: str | None = "default") -> list[ClaimRecord]:
    query = sa.select(claims).order_by(claims.c.created_at)
    if project is not None:
        query = query.where(claims.c.project == project)
    return [_claim(r) for r in (await conn.execute(query)).all()]


async def insert_claim(conn: AsyncConnection, record: ClaimRecord) -> None:
    values = dict(record.__dict__)
    values["allowed_templates"] = list(record.allowed_templates)
    await conn.execute(sa.insert(claims).values(**values))


async def revoke_claim(conn: AsyncConnection, claim_id: str, now: float) -> ClaimRecord | None:
    """Mark a claim and its certificate REVOKED. Returns the claim as it was, or None."""
    claim = await get_claim(conn, claim_id)
    if claim is None:
        return None
    await conn.execute(sa.update(claims).where(claims.c.id == claim_id).values(revoked_at=now))
    await set_certificate_status(conn, claim.certificate_id, "REVOKED", now)
    return claim


def count_claim_devices_sync(conn: Connection, claim_id: str) -> int:
    return int(conn.execute(_CLAIM_DEVICES, {"p_claim": claim_id}).scalar_one())


async def count_claim_devices(conn: AsyncConnection, claim_id: str) -> int:
    """How many things this claim has registered (used ownership tokens)."""
    return await conn.run_sync(count_claim_devices_sync, claim_id)


# -- templates ---------------------------------------------------------------------------------
def get_template_sync(conn: Connection, name: str) -> TemplateRecord | None:
    row = conn.execute(_TEMPLATE_BY_NAME, {"p_name": name}).first()
    return _template(row) if row else None


async def get_template(conn: AsyncConnection, name: str) -> TemplateRecord | None:
    return await conn.run_sync(get_template_sync, name)


async def list_templates(
    conn: AsyncConnection, project: str | None = "default"
) -> list[TemplateRecord]:
    query = sa.select(provisioning_templates).order_by(provisioning_templates.c.name)
    if project is not None:
        query = query.where(provisioning_templates.c.project == project)
    return [_template(r) for r in (await conn.execute(query)).all()]


async def insert_template(conn: AsyncConnection, record: TemplateRecord) -> None:
    await conn.execute(sa.insert(provisioning_templates).values(**record.__dict__))


async def update_template(conn: AsyncConnection, name: str, values: Mapping[str, Any]) -> bool:
    result = await conn.execute(
        sa.update(provisioning_templates)
        .where(provisioning_templates.c.name == name)
        .values(**values, version=provisioning_templates.c.version + 1)
    )
    return bool(result.rowcount)


# -- ownership tokens --------------------------------------------------------------------------
def insert_token_sync(conn: Connection, record: OwnershipTokenRecord) -> None:
    conn.execute(_INSERT_TOKEN, record.__dict__)


async def insert_token(conn: AsyncConnection, record: OwnershipTokenRecord) -> None:
    await conn.run_sync(insert_token_sync, record)


def get_token_sync(conn: Connection, token_hash: str) -> OwnershipTokenRecord | None:
    row = conn.execute(_TOKEN_BY_HASH, {"p_hash": token_hash}).first()
    if row is None:
        return None
    return OwnershipTokenRecord(
        token_hash=row.token_hash,
        certificate_id=row.certificate_id,
        claim_id=row.claim_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        thing_name=row.thing_name,
    )


async def get_token(conn: AsyncConnection, token_hash: str) -> OwnershipTokenRecord | None:
    return await conn.run_sync(get_token_sync, token_hash)


def mark_token_used_sync(conn: Connection, token_hash: str, now: float, thing_name: str) -> bool:
    params = {"p_hash": token_hash, "p_now": now, "p_thing": thing_name}
    return bool(conn.execute(_USE_TOKEN, params).rowcount)


async def mark_token_used(
    conn: AsyncConnection, token_hash: str, now: float, thing_name: str
) -> bool:
    """Consume a token atomically: False if another request used it first."""
    return await conn.run_sync(mark_token_used_sync, token_hash, now, thing_name)


# -- policies (read on every device CONNECT) ------------------------------------------------
def connection_policies_sync(
    conn: Connection, project: str, certificate_id: str
) -> list[PolicyRecord]:
    """The project-wide policies of ``project`` (by name), then those attached to the
    certificate (by name): what a device connection is granted beyond the built-in policy."""
    wide = conn.execute(
        sa.select(policies)
        .where(policies.c.project == project)
        .where(policies.c.project_wide.is_(True))
        .order_by(policies.c.name)
    ).all()
    attached = conn.execute(
        sa.select(policies)
        .join(certificate_policies, certificate_policies.c.policy_name == policies.c.name)
        .where(certificate_policies.c.certificate_id == certificate_id)
        .order_by(policies.c.name)
    ).all()
    return [policy_record(r) for r in (*wide, *attached)]
