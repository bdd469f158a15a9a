"""Repository of console operator accounts and sessions
(:mod:`lantern.store.schema.operators`). Plain rows in and out; every function takes the
caller's :class:`AsyncConnection`. What a row may hold is decided by :mod:`lantern.operators`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.schema.operators import console_sessions, operators

__all__ = [
    "OperatorRow",
    "SessionRow",
    "delete_session",
    "delete_sessions_idle_since",
    "delete_sessions_of",
    "get_operator",
    "get_session",
    "insert_operator",
    "insert_session",
    "list_operators",
    "set_disabled",
    "touch_session",
]


@dataclass(frozen=True, slots=True)
class OperatorRow:
    name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: float
    disabled_at: float | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id_hash: str
    operator: str
    role: str
    csrf_token: str
    created_at: float
    last_seen: float
    remote: str | None


def _operator(row: object) -> OperatorRow:
    m = row._mapping  # type: ignore[attr-defined]
    return OperatorRow(
        name=m["name"],
        role=m["role"],
        password_hash=m["password_hash"],
        disabled=bool(m["disabled"]),
        created_at=float(m["created_at"]),
        disabled_at=None if m["disabled_at"] is None else float(m["disabled_at"]),
    )


async def insert_operator(conn: AsyncConnection, row: OperatorRow) -> None:
    await conn.execute(
        insert(operators).values(
            name=row.name,
            role=row.role,
            password_hash=row.password_hash,
            disabled=row.disabled,
            created_at=row.created_at,
            disabled_at=row.disabled_at,
        )
    )


async def get_operator(conn: AsyncConnection, name: str) -> OperatorRow | None:
    row = (await conn.execute(select(operators).where(operators.c.name == name))).first()
    return None if row is None else _operator(row)


async def list_operators(conn: AsyncConnection) -> list[OperatorRow]:
    rows = await conn.execute(select(operators).order_by(operators.c.name))
    return [_operator(r) for r in rows]


async def set_disabled(conn: AsyncConnection, name: str, at: float) -> bool:
    """Disable ``name``; False when it does not exist."""
    result = await conn.execute(
        update(operators).where(operators.c.name == name).values(disabled=True, disabled_at=at)
    )
    return bool(result.rowcount)


async def insert_session(conn: AsyncConnection, row: SessionRow) -> None:
    await conn.execute(
        insert(console_sessions).values(
            id_hash=row.id_hash,
            operator=row.operator,
            role=row.role,
            csrf_token=row.csrf_token,
            created_at=row.created_at,
            last_seen=row.last_seen,
            remote=row.remote,
        )
    )


async def get_session(conn: AsyncConnection, id_hash: str) -> SessionRow | None:
    row = (
        await conn.execute(select(console_sessions).where(console_sessions.c.id_hash == id_hash))
    ).first()
    if row is None:
        return None
    m = row._mapping
    return SessionRow(
        id_hash=m["id_hash"],
        operator=m["operator"],
        role=m["role"],
        csrf_token=m["csrf_token"],
        created_at=float(m["created_at"]),
        last_seen=float(m["last_seen"]),
        remote=m["remote"],
    )


async def touch_session(conn: AsyncConnection, id_hash: str, at: float) -> None:
    await conn.execute(
        update(console_sessions).where(console_sessions.c.id_hash == id_hash).values(last_seen=at)
    )


async def delete_session(conn: AsyncConnection, id_hash: str) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))


async def delete_sessions_of(conn: AsyncConnection, operator: str) -> int:
    result = await conn.execute(
        delete(console_sessions).where(console_sessions.c.operator == operator)
    )
    return int(result.rowcount or 0)


async def delete_sessions_idle_since(conn: AsyncConnection, before: float) -> int:
    result = await conn.execute(
        delete(console_sessions).where(console_sessions.c.last_seen < before)
    )
    return int(result.rowcount or 0)
