"""Claims and provisioning templates: one Core statement each, the hot ones (read by every
provisioning request) :class:`~lantern.store.sqlite.prepared.Prepared`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.registry.columns import (
    CLAIM_COLUMNS,
    TEMPLATE_COLUMNS,
    claim_record,
    template_record,
    values_of,
)
from lantern.store.registry.devices import set_certificate_status_sync
from lantern.store.registry.records import ClaimRecord, ClaimSummary, TemplateRecord
from lantern.store.schema.registry import (
    certificates,
    claims,
    ownership_tokens,
    provisioning_templates,
)
from lantern.store.sqlite.prepared import Prepared

__all__ = [
    "claim_summaries",
    "count_claim_devices_sync",
    "get_claim",
    "get_claim_by_certificate",
    "get_claim_by_certificate_sync",
    "get_claim_sync",
    "get_template",
    "get_template_sync",
    "insert_claim",
    "insert_claim_sync",
    "insert_template",
    "list_templates_sync",
    "live_claim_sync",
    "revoke_claim",
    "revoke_claim_sync",
    "update_template",
]

_CLAIM_BY_ID = Prepared(sa.select(*CLAIM_COLUMNS).where(claims.c.id == sa.bindparam("p_id")))
_CLAIM_BY_CERT = Prepared(
    sa.select(*CLAIM_COLUMNS).where(claims.c.certificate_id == sa.bindparam("p_cert"))
)
_LIVE_CLAIM = Prepared(
    sa.select(*CLAIM_COLUMNS)
    .join(certificates, certificates.c.id == claims.c.certificate_id)
    .where(claims.c.id == sa.bindparam("p_id"))
    .where(claims.c.certificate_id == sa.bindparam("p_cert"))
    .where(claims.c.revoked_at.is_(None))
    .where(certificates.c.status == "ACTIVE")
)
_USED_TOKENS = ownership_tokens.c.used_at.is_not(None)
_CLAIM_DEVICES = Prepared(
    sa.select(sa.func.count())
    .select_from(ownership_tokens)
    .where(ownership_tokens.c.claim_id == sa.bindparam("p_claim"))
    .where(_USED_TOKENS)
)
_TEMPLATE_BY_NAME = Prepared(
    sa.select(*TEMPLATE_COLUMNS).where(provisioning_templates.c.name == sa.bindparam("p_name"))
)


# -- claims ------------------------------------------------------------------------------------
def get_claim_sync(conn: Connection, claim_id: str) -> ClaimRecord | None:
    row = _CLAIM_BY_ID.first(conn, {"p_id": claim_id})
    return None if row is None else claim_record(row)


async def get_claim(conn: AsyncConnection, claim_id: str) -> ClaimRecord | None:
    return await conn.run_sync(get_claim_sync, claim_id)


def get_claim_by_certificate_sync(conn: Connection, certificate_id: str) -> ClaimRecord | None:
    row = _CLAIM_BY_CERT.first(conn, {"p_cert": certificate_id})
    return None if row is None else claim_record(row)


async def get_claim_by_certificate(
    conn: AsyncConnection, certificate_id: str
) -> ClaimRecord | None:
    return await conn.run_sync(get_claim_by_certificate_sync, certificate_id)


def live_claim_sync(conn: Connection, claim_id: str, certificate_id: str) -> ClaimRecord | None:
    """The claim if it is not revoked and its certificate ``certificate_id`` is ACTIVE (one
    statement), else None."""
    row = _LIVE_CLAIM.first(conn, {"p_id": claim_id, "p_cert": certificate_id})
    return None if row is None else claim_record(row)


def _claims_query(project: str | None) -> sa.Select[Any]:
    query = sa.select(*CLAIM_COLUMNS).order_by(claims.c.created_at, claims.c.id)
    return query if project is None else query.where(claims.c.project == project)


def claim_summaries(
    conn: Connection, project: str | None = None, claim_id: str | None = None
) -> list[ClaimSummary]:
    """Claims (oldest first; one, with ``claim_id``) with how many things each registered: one
    statement, whatever the number of claims."""
    used = (
        sa.select(ownership_tokens.c.claim_id, sa.func.count().label("devices"))
        .where(_USED_TOKENS)
        .group_by(ownership_tokens.c.claim_id)
        .subquery()
    )
    query = (
        _claims_query(project)
        .add_columns(sa.func.coalesce(used.c.devices, 0))
        .select_from(claims.outerjoin(used, used.c.claim_id == claims.c.id))
    )
    if claim_id is not None:
        query = query.where(claims.c.id == claim_id)
    return [ClaimSummary(claim_record(row[:-1]), int(row[-1])) for row in conn.execute(query)]


def insert_claim_sync(conn: Connection, record: ClaimRecord) -> None:
    values = values_of(record)
    values["allowed_templates"] = list(record.allowed_templates)
    conn.execute(sa.insert(claims).values(**values))


async def insert_claim(conn: AsyncConnection, record: ClaimRecord) -> None:
    await conn.run_sync(insert_claim_sync, record)


def revoke_claim_sync(conn: Connection, claim_id: str, now: float) -> ClaimRecord | None:
    """Mark a claim and its certificate REVOKED. Returns the claim as it was, or None."""
    claim = get_claim_sync(conn, claim_id)
    if claim is None:
        return None
    conn.execute(sa.update(claims).where(claims.c.id == claim_id).values(revoked_at=now))
    set_certificate_status_sync(conn, claim.certificate_id, "REVOKED", now)
    return claim


async def revoke_claim(conn: AsyncConnection, claim_id: str, now: float) -> ClaimRecord | None:
    """Mark a claim and its certificate REVOKED. Returns the claim as it was, or None."""
    return await conn.run_sync(revoke_claim_sync, claim_id, now)


def count_claim_devices_sync(conn: Connection, claim_id: str) -> int:
    """How many things this claim has registered (used ownership tokens)."""
    row = _CLAIM_DEVICES.first(conn, {"p_claim": claim_id})
    assert row is not None
    return int(row[0])


# -- templates ---------------------------------------------------------------------------------
def get_template_sync(conn: Connection, name: str) -> TemplateRecord | None:
    row = _TEMPLATE_BY_NAME.first(conn, {"p_name": name})
    return None if row is None else template_record(row)


async def get_template(conn: AsyncConnection, name: str) -> TemplateRecord | None:
    return await conn.run_sync(get_template_sync, name)


def list_templates_sync(conn: Connection, project: str | None = "default") -> list[TemplateRecord]:
    query = sa.select(*TEMPLATE_COLUMNS).order_by(provisioning_templates.c.name)
    if project is not None:
        query = query.where(provisioning_templates.c.project == project)
    return [template_record(r) for r in conn.execute(query)]


async def insert_template(conn: AsyncConnection, record: TemplateRecord) -> None:
    await conn.execute(sa.insert(provisioning_templates).values(**values_of(record)))


async def update_template(conn: AsyncConnection, name: str, values: Mapping[str, Any]) -> bool:
    result = await conn.execute(
        sa.update(provisioning_templates)
        .where(provisioning_templates.c.name == name)
        .values(**values, version=provisioning_templates.c.version + 1)
    )
    return bool(result.rowcount)


async def delete_template(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(
        sa.delete(provisioning_templates).where(provisioning_templates.c.name == name)
    )
    return bool(result.rowcount)


def template_users_sync(conn: Connection, name: str) -> list[str]:
    """The ids of the live (unrevoked) claims that may use template ``name``."""
    rows = conn.execute(
        sa.select(claims.c.id, claims.c.allowed_templates).where(claims.c.revoked_at.is_(None))
    )
    out = []
    for claim_id, allowed in rows:
        names = json.loads(allowed) if isinstance(allowed, str) else allowed
        if name in names:
            out.append(claim_id)
    return out
