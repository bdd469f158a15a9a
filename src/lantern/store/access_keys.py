"""The access keys repository (table ``access_keys``): sealed secrets, never decrypted here.

Every function takes a connection of the async engine (``Database.connect`` / ``transaction``);
the same Core statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.schema.iam import access_keys as _t

__all__ = [
    "AccessKeyRecord",
    "delete_key",
    "get_key",
    "get_key_by_name",
    "insert_key",
    "list_keys",
    "set_disabled",
    "touch_used",
]


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    id: str
    name: str
    role: str
    secret_sealed: str
    created_at: float
    disabled_at: float | None = None
    last_used_at: float | None = None


_COLUMNS = (
    _t.c.id,
    _t.c.name,
    _t.c.role,
    _t.c.secret_sealed,
    _t.c.created_at,
    _t.c.disabled_at,
    _t.c.last_used_at,
)


def _record(row: Any) -> AccessKeyRecord:
    return AccessKeyRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        secret_sealed=row.secret_sealed,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        last_used_at=row.last_used_at,
    )


async def insert_key(conn: AsyncConnection, record: AccessKeyRecord) -> None:
    await conn.execute(
        sa.insert(_t).values(
            id=record.id,
            name=record.name,
            role=record.role,
            secret_sealed=record.secret_sealed,
            created_at=record.created_at,
            disabled_at=record.disabled_at,
            last_used_at=record.last_used_at,
        )
    )


async def get_key(conn: AsyncConnection, key_id: str) -> AccessKeyRecord | None:
    row = (await conn.execute(sa.select(*_COLUMNS).where(_t.c.id == key_id))).first()
    return None if row is None else _record(row)


async def get_key_by_name(conn: AsyncConnection, name: str) -> AccessKeyRecord | None:
    row = (await conn.execute(sa.select(*_COLUMNS).where(_t.c.name == name))).first()
    return None if row is None else _record(row)


async def list_keys(conn: AsyncConnection) -> list[AccessKeyRecord]:
    rows = await conn.execute(sa.select(*_COLUMNS).order_by(_t.c.created_at, _t.c.id))
    return [_record(r) for r in rows]


async def set_disabled(conn: AsyncConnection, key_id: str, when: float | None) -> bool:
    result = await conn.execute(sa.update(_t).where(_t.c.id == key_id).values(disabled_at=when))
    return bool(result.rowcount)


async def touch_used(conn: AsyncConnection, key_id: str, when: float) -> None:
    await conn.execute(sa.update(_t).where(_t.c.id == key_id).values(last_used_at=when))


async def delete_key(conn: AsyncConnection, key_id: str) -> bool:
    result = await conn.execute(sa.delete(_t).where(_t.c.id == key_id))
    return bool(result.rowcount)
