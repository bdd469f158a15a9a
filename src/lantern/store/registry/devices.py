"""Things, certificates and ownership tokens: one Core statement each, the hot ones
:class:`~lantern.store.sqlite.prepared.Prepared`.

Every function is a synchronous function of a :class:`~sqlalchemy.engine.Connection` (run in a
unit of work, or by ``AsyncConnection.run_sync``); the ``async`` twins the operator actions use
call them through ``run_sync``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.registry.columns import (
    CERTIFICATE_COLUMNS,
    THING_COLUMNS,
    TOKEN_COLUMNS,
    certificate_record,
    thing_record,
    token_record,
    untyped,
    values_of,
)
from lantern.store.registry.records import (
    CERTIFICATE_STATUSES,
    DISABLED_STATUSES,
    CertificateRecord,
    OwnershipTokenRecord,
    ThingRecord,
)
from lantern.store.schema.registry import certificates, ownership_tokens, things
from lantern.store.sqlite.prepared import Prepared

__all__ = [
    "certificates_with_prefix",
    "count_things_sync",
    "delete_certificates",
    "delete_certificates_sync",
    "delete_thing",
    "disabled_certificates_since",
    "get_certificate",
    "get_certificate_sync",
    "get_thing",
    "get_thing_sync",
    "get_token_sync",
    "insert_certificate",
    "insert_certificate_sync",
    "insert_thing",
    "insert_thing_sync",
    "insert_token",
    "insert_token_sync",
    "list_certificates",
    "list_certificates_sync",
    "list_things",
    "list_things_sync",
    "mark_token_used_sync",
    "set_certificate_status",
    "set_certificate_status_sync",
    "stale_pending_certificates",
    "stale_pending_certificates_sync",
    "thing_names_sync",
    "update_thing",
    "update_thing_sync",
]


def _insert_all(table: sa.Table, json_columns: Sequence[str] = ()) -> sa.Insert:
    values = {
        c.name: untyped(c.name) if c.name in json_columns else sa.bindparam(c.name) for c in table.c
    }
    return sa.insert(table).values(values)


_THING_BY_NAME = Prepared(sa.select(*THING_COLUMNS).where(things.c.name == sa.bindparam("p_name")))
_INSERT_THING = Prepared(_insert_all(things, ("attributes",)))
_CERT_BY_ID = Prepared(
    sa.select(*CERTIFICATE_COLUMNS).where(certificates.c.id == sa.bindparam("p_id"))
)
_INSERT_CERT = Prepared(_insert_all(certificates))
_SET_STATUS = (
    sa.update(certificates)
    .where(certificates.c.id == sa.bindparam("p_id"))
    .values(status=sa.bindparam("p_status"), updated_at=sa.bindparam("p_now"))
)
_SET_STATUS_ONLY = Prepared(_SET_STATUS)
_SET_STATUS_AND_THING = Prepared(_SET_STATUS.values(thing_name=sa.bindparam("p_thing")))
_INSERT_TOKEN = Prepared(_insert_all(ownership_tokens))
_TOKEN_BY_HASH = Prepared(
    sa.select(*TOKEN_COLUMNS).where(ownership_tokens.c.token_hash == sa.bindparam("p_hash"))
)
_USE_TOKEN = Prepared(
    sa.update(ownership_tokens)
    .where(ownership_tokens.c.token_hash == sa.bindparam("p_hash"))
    .where(ownership_tokens.c.used_at.is_(None))
    .values(used_at=sa.bindparam("p_now"), thing_name=sa.bindparam("p_thing"))
)
_DISABLED_SINCE = Prepared(
    sa.select(certificates.c.id)
    .where(certificates.c.updated_at >= sa.bindparam("p_since"))
    .where(certificates.c.status.in_(DISABLED_STATUSES))
)


# -- things ------------------------------------------------------------------------------------
def get_thing_sync(conn: Connection, name: str) -> ThingRecord | None:
    row = _THING_BY_NAME.first(conn, {"p_name": name})
    return None if row is None else thing_record(row)


async def get_thing(conn: AsyncConnection, name: str) -> ThingRecord | None:
    """The thing called ``name``, or None."""
    return await conn.run_sync(get_thing_sync, name)


def list_things_sync(
    conn: Connection,
    project: str | None = "default",
    *,
    template_name: str | None = None,
    limit: int = 1000,
    after: str | None = None,
) -> list[ThingRecord]:
    """Things ordered by name; ``project=None`` lists every project. ``after`` pages by name."""
    query = sa.select(*THING_COLUMNS).order_by(things.c.name).limit(limit)
    if project is not None:
        query = query.where(things.c.project == project)
    if template_name is not None:
        query = query.where(things.c.template_name == template_name)
    if after is not None:
        query = query.where(things.c.name > after)
    return [thing_record(r) for r in conn.execute(query)]


async def list_things(
    conn: AsyncConnection,
    project: str | None = "default",
    *,
    template_name: str | None = None,
    limit: int = 1000,
    after: str | None = None,
) -> list[ThingRecord]:
    """Things ordered by name; ``project=None`` lists every project. ``after`` pages by name."""
    return await conn.run_sync(
        lambda c: list_things_sync(
            c, project, template_name=template_name, limit=limit, after=after
        )
    )


def insert_thing_sync(conn: Connection, record: ThingRecord) -> None:
    values = values_of(record)
    values["attributes"] = json.dumps(record.attributes)
    _INSERT_THING.run(conn, values)


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


def count_things_sync(
    conn: Connection, project: str | None = None, *, created_since: float | None = None
) -> int:
    """How many things (of ``project``; None: every project), or created at or after
    ``created_since``: one ``count(*)``, however large the fleet."""
    query = sa.select(sa.func.count()).select_from(things)
    if project is not None:
        query = query.where(things.c.project == project)
    if created_since is not None:
        query = query.where(things.c.created_at >= created_since)
    return int(conn.execute(query).scalar_one())


def thing_names_sync(conn: Connection, created_since: float | None = None) -> set[str]:
    """Every thing's name, or those of things created at or after ``created_since``."""
    query = sa.select(things.c.name)
    if created_since is not None:
        query = query.where(things.c.created_at >= created_since)
    return {name for (name,) in conn.execute(query)}


# -- certificates ------------------------------------------------------------------------------
def get_certificate_sync(conn: Connection, certificate_id: str) -> CertificateRecord | None:
    row = _CERT_BY_ID.first(conn, {"p_id": certificate_id})
    return None if row is None else certificate_record(row)


async def get_certificate(conn: AsyncConnection, certificate_id: str) -> CertificateRecord | None:
    return await conn.run_sync(get_certificate_sync, certificate_id)


def list_certificates_sync(
    conn: Connection,
    project: str | None = "default",
    *,
    kind: str | None = None,
    status: str | None = None,
    thing_name: str | None = None,
    limit: int = 1000,
) -> list[CertificateRecord]:
    query = sa.select(*CERTIFICATE_COLUMNS).order_by(certificates.c.created_at).limit(limit)
    if project is not None:
        query = query.where(certificates.c.project == project)
    if kind is not None:
        query = query.where(certificates.c.kind == kind)
    if status is not None:
        query = query.where(certificates.c.status == status)
    if thing_name is not None:
        query = query.where(certificates.c.thing_name == thing_name)
    return [certificate_record(r) for r in conn.execute(query)]


async def list_certificates(
    conn: AsyncConnection,
    project: str | None = "default",
    *,
    kind: str | None = None,
    status: str | None = None,
    thing_name: str | None = None,
    limit: int = 1000,
) -> list[CertificateRecord]:
    return await conn.run_sync(
        lambda c: list_certificates_sync(
            c, project, kind=kind, status=status, thing_name=thing_name, limit=limit
        )
    )


def certificates_with_prefix(conn: Connection, prefix: str, limit: int) -> list[CertificateRecord]:
    """At most ``limit`` certificates whose id starts with ``prefix``."""
    query = (
        sa.select(*CERTIFICATE_COLUMNS)
        .where(certificates.c.id.startswith(prefix, autoescape=True))
        .order_by(certificates.c.id)
        .limit(limit)
    )
    return [certificate_record(r) for r in conn.execute(query)]


def insert_certificate_sync(conn: Connection, record: CertificateRecord) -> None:
    _INSERT_CERT.run(conn, values_of(record))


async def insert_certificate(conn: AsyncConnection, record: CertificateRecord) -> None:
    await conn.run_sync(insert_certificate_sync, record)


def set_certificate_status_sync(
    conn: Connection, certificate_id: str, status: str, now: float, thing_name: str | None = None
) -> bool:
    if status not in CERTIFICATE_STATUSES:
        raise ValueError(f"unknown certificate status {status!r}")
    params = {"p_id": certificate_id, "p_status": status, "p_now": now}
    if thing_name is None:
        return _SET_STATUS_ONLY.run(conn, params) > 0
    return _SET_STATUS_AND_THING.run(conn, {**params, "p_thing": thing_name}) > 0


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


def delete_certificates_sync(conn: Connection, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    result = conn.execute(sa.delete(certificates).where(certificates.c.id.in_(list(ids))))
    return int(result.rowcount or 0)


async def delete_certificates(conn: AsyncConnection, ids: Sequence[str]) -> int:
    return await conn.run_sync(delete_certificates_sync, ids)


def stale_pending_certificates_sync(conn: Connection, now: float) -> list[str]:
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
    return [cert_id for (cert_id,) in conn.execute(query)]


async def stale_pending_certificates(conn: AsyncConnection, now: float) -> list[str]:
    return await conn.run_sync(stale_pending_certificates_sync, now)


def disabled_certificates_since(conn: Connection, since: float) -> list[str]:
    """Ids of certificates made INACTIVE or REVOKED (changed) at or after ``since``."""
    return [cert_id for (cert_id,) in _DISABLED_SINCE.rows(conn, {"p_since": since})]


# -- ownership tokens --------------------------------------------------------------------------
def insert_token_sync(conn: Connection, record: OwnershipTokenRecord) -> None:
    _INSERT_TOKEN.run(conn, values_of(record))


async def insert_token(conn: AsyncConnection, record: OwnershipTokenRecord) -> None:
    await conn.run_sync(insert_token_sync, record)


def get_token_sync(conn: Connection, token_hash: str) -> OwnershipTokenRecord | None:
    row = _TOKEN_BY_HASH.first(conn, {"p_hash": token_hash})
    return None if row is None else token_record(row)


def mark_token_used_sync(conn: Connection, token_hash: str, now: float, thing_name: str) -> bool:
    """Consume a token atomically: False if another request used it first."""
    params = {"p_hash": token_hash, "p_now": now, "p_thing": thing_name}
    return _USE_TOKEN.run(conn, params) > 0


async def detach_certificate(conn: AsyncConnection, certificate_id: str, now: float) -> bool:
    """Detach a certificate from its thing (it can no longer connect as that thing)."""
    result = await conn.execute(
        sa.update(certificates)
        .where(certificates.c.id == certificate_id)
        .values(thing_name=None, updated_at=now)
    )
    return bool(result.rowcount)


def certificates_page_sync(
    conn: Connection,
    after: tuple[float, str] | None,
    limit: int,
    *,
    ascending: bool,
    thing_name: str | None = None,
    status: str | None = None,
) -> list[CertificateRecord]:
    """Certificates of every project by (creation time, id), oldest or newest first, from just
    after the key ``after`` (keyset paging: each page is one indexed query); only
    ``thing_name``'s, only those in ``status``, when given."""
    key = sa.tuple_(certificates.c.created_at, certificates.c.id)
    order = (certificates.c.created_at, certificates.c.id)
    columns = order if ascending else tuple(c.desc() for c in order)
    query = sa.select(*CERTIFICATE_COLUMNS).order_by(*columns).limit(limit)
    if thing_name is not None:
        query = query.where(certificates.c.thing_name == thing_name)
    if status is not None:
        query = query.where(certificates.c.status == status)
    if after is not None:
        query = query.where(key > sa.tuple_(*after) if ascending else key < sa.tuple_(*after))
    return [certificate_record(r) for r in conn.execute(query)]
