"""Repository of the audit log (:data:`lantern.store.schema.audit.audit_log`).

Plain rows in and out; what goes in a row (and that no secret does) is decided by
:mod:`lantern.audit`. Every function takes the caller's :class:`AsyncConnection`, so an entry
can be written in the same transaction as the action it records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.schema.audit import audit_log

__all__ = ["AuditFilter", "AuditRow", "NewAuditEntry", "insert_entry", "page", "set_details"]

_LIMITS = {"actor": 160, "action": 64, "target": 512, "remote": 64}


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """An entry to append (its id is assigned by the database)."""

    at: float
    actor: str
    action: str
    target: str
    outcome: str
    remote: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """A stored entry."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    remote: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to read: all given conditions hold (None = no condition)."""

    since: float | None = None  # at >= since
    actor: str | None = None  # exact actor
    action_prefix: str | None = None  # action starts with this (literally: no wildcards)
    before_id: int | None = None  # id < before_id (the page cursor)


def _cut(value: str | None, column: str) -> str | None:
    return None if value is None else value[: _LIMITS[column]]


async def insert_entry(conn: AsyncConnection, entry: NewAuditEntry) -> int:
    """Append ``entry`` in the caller's transaction; returns its id."""
    result = await conn.execute(
        insert(audit_log).values(
            at=entry.at,
            actor=_cut(entry.actor, "actor"),
            action=_cut(entry.action, "action"),
            target=_cut(entry.target, "target"),
            outcome=entry.outcome,
            remote=_cut(entry.remote, "remote"),
            details=dict(entry.details),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def set_details(conn: AsyncConnection, entry_id: int, details: Mapping[str, Any]) -> None:
    """Replace an entry's details (only for the running count of a rate-limited entry)."""
    await conn.execute(
        update(audit_log).where(audit_log.c.id == entry_id).values(details=dict(details))
    )


async def page(conn: AsyncConnection, where: AuditFilter, limit: int) -> list[AuditRow]:
    """Up to ``limit`` entries matching ``where``, newest (highest id) first."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if where.since is not None:
        query = query.where(audit_log.c.at >= where.since)
    if where.actor is not None:
        query = query.where(audit_log.c.actor == where.actor)
    if where.action_prefix:
        query = query.where(audit_log.c.action.startswith(where.action_prefix, autoescape=True))
    if where.before_id is not None:
        query = query.where(audit_log.c.id < where.before_id)
    rows = (await conn.execute(query)).mappings().all()
    return [
        AuditRow(
            id=int(r["id"]),
            at=float(r["at"]),
            actor=r["actor"],
            action=r["action"],
            target=r["target"],
            outcome=r["outcome"],
            remote=r["remote"],
            details=dict(r["details"] or {}),
        )
        for r in rows
    ]
