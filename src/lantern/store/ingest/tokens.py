"""FHIR read tokens (only their hashes are stored) and the project check a new token needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.ingest.records import TokenRecord
from lantern.store.schema.core import projects
from lantern.store.schema.ingest import fhir_tokens

__all__ = ["find_active_token", "insert_token", "list_tokens", "project_exists", "revoke_token"]


async def project_exists(conn: AsyncConnection, project: str) -> bool:
    """Whether the project ``project`` exists."""
    q = select(projects.c.name).where(projects.c.name == project)
    return (await conn.execute(q)).first() is not None


def _token(row: Any) -> TokenRecord:
    return TokenRecord(row.id, row.project, row.scope, row.name, row.created_at, row.revoked_at)


async def insert_token(
    conn: AsyncConnection,
    *,
    token_id: str,
    project: str,
    scope: str,
    name: str,
    token_hash: str,
    now: float,
) -> None:
    await conn.execute(
        insert(fhir_tokens).values(
            id=token_id,
            project=project,
            scope=scope,
            name=name,
            token_hash=token_hash,
            created_at=now,
        )
    )


async def find_active_token(conn: AsyncConnection, token_hash: str) -> TokenRecord | None:
    t = fhir_tokens.c
    row = (
        await conn.execute(
            select(fhir_tokens).where(t.token_hash == token_hash, t.revoked_at.is_(None))
        )
    ).first()
    return None if row is None else _token(row)


async def list_tokens(conn: AsyncConnection, project: str | None = None) -> list[TokenRecord]:
    q = select(fhir_tokens).order_by(fhir_tokens.c.created_at)
    if project is not None:
        q = q.where(fhir_tokens.c.project == project)
    return [_token(r) for r in (await conn.execute(q)).all()]


async def revoke_token(conn: AsyncConnection, token_id: str, now: float) -> bool:
    """True when an active token was revoked."""
    t = fhir_tokens.c
    result = await conn.execute(
        update(fhir_tokens).where(t.id == token_id, t.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)
