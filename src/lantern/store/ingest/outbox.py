"""The FHIR forwarding outbox: a pending delivery per observation (written with its batch)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.ingest.records import OutboxEntry
from lantern.store.schema.ingest import fhir_outbox

__all__ = ["due_outbox", "mark_outbox", "next_outbox_due", "outbox_states"]


async def due_outbox(conn: AsyncConnection, now: float, limit: int) -> list[OutboxEntry]:
    b = fhir_outbox.c
    q = (
        select(b.id, b.observation_id, b.attempts)
        .where(b.state == "pending", b.next_attempt_at <= now)
        .order_by(b.next_attempt_at, b.id)
        .limit(limit)
    )
    return [OutboxEntry(r.id, r.observation_id, r.attempts) for r in (await conn.execute(q))]


async def next_outbox_due(conn: AsyncConnection) -> float | None:
    b = fhir_outbox.c
    q = select(func.min(b.next_attempt_at)).where(b.state == "pending")
    value = (await conn.execute(q)).scalar_one_or_none()
    return None if value is None else float(value)


async def mark_outbox(
    conn: AsyncConnection,
    entry_id: int,
    *,
    state: str,
    attempts: int,
    next_attempt_at: float,
    error: str | None,
    now: float,
) -> None:
    await conn.execute(
        update(fhir_outbox)
        .where(fhir_outbox.c.id == entry_id)
        .values(
            state=state,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=None if error is None else error[:512],
            updated_at=now,
        )
    )


async def outbox_states(conn: AsyncConnection) -> dict[str, int]:
    b = fhir_outbox.c
    rows = (await conn.execute(select(b.state, func.count()).group_by(b.state))).all()
    return {str(state): int(n) for state, n in rows}
