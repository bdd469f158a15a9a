"""Repository of scheduled notifications: schedules, their destinations and their history.

The scheduler's claims on occurrences (claim, take over, renew, release, record results) are in
:mod:`lantern.store.schedule_claims`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.db import Database, InTransaction
from lantern.store.schema.schedule import (
    schedule_deliveries,
    schedule_destinations,
    schedule_occurrences,
    schedules,
)

S, D, O, R = schedules, schedule_destinations, schedule_occurrences, schedule_deliveries  # noqa: E741


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    id: int
    position: int
    token: str
    active: bool
    deactivated_at: float | None
    deactivated_reason: str | None


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A stored schedule (``times``: ``"HH:MM,..."`` or None)."""

    id: str
    key_id: str
    activity_id: str
    participant_id: str
    title: str
    message: str
    timezone: str
    start_at: int
    end_at: int | None
    cron: str | None
    repeat: str | None
    times: str | None
    state: str
    next_fire_at: int | None
    created_at: float
    updated_at: float
    destinations: tuple[DestinationRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    destination_id: int
    position: int
    status: str
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class OccurrenceRecord:
    """One history entry: when it was due, when it fired, how it ended. No message content."""

    id: int
    schedule_id: str
    scheduled_at: int
    status: str
    fired_at: float | None
    completed_at: float | None
    detail: str | None
    deliveries: tuple[DeliveryRecord, ...] = ()


def schedule_from_row(
    row: object, destinations: Sequence[DestinationRecord] = ()
) -> ScheduleRecord:
    """A :class:`ScheduleRecord` from a row holding the ``schedules`` columns."""
    m = row._mapping  # type: ignore[attr-defined]
    return ScheduleRecord(
        id=m["id"],
        key_id=m["key_id"],
        activity_id=m["activity_id"],
        participant_id=m["participant_id"],
        title=m["title"],
        message=m["message"],
        timezone=m["timezone"],
        start_at=int(m["start_at"]),
        end_at=None if m["end_at"] is None else int(m["end_at"]),
        cron=m["cron"],
        repeat=m["repeat"],
        times=m["times"],
        state=m["state"],
        next_fire_at=None if m["next_fire_at"] is None else int(m["next_fire_at"]),
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
        destinations=tuple(destinations),
    )


def _destination(row: object) -> DestinationRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return DestinationRecord(
        id=int(m["id"]),
        position=int(m["position"]),
        token=m["token"],
        active=bool(m["active"]),
        deactivated_at=m["deactivated_at"],
        deactivated_reason=m["deactivated_reason"],
    )


class ScheduleStore:
    """All database access of the schedule service."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- schedules ----------------------------------------------------------------------------

    async def insert(
        self, record: ScheduleRecord, tokens: Sequence[str], *, also: InTransaction | None = None
    ) -> None:
        """Insert a schedule and its destinations (``also`` runs in the same transaction)."""
        values = {k: getattr(record, k) for k in S.c.keys()}  # noqa: SIM118 (column names)
        async with self.db.transaction() as conn:
            await conn.execute(insert(S).values(**values))
            await conn.execute(
                insert(D),
                [
                    {"schedule_id": record.id, "position": i, "token": t, "active": True}
                    for i, t in enumerate(tokens)
                ],
            )
            if also is not None:
                await also(conn)

    async def _destinations(
        self, conn: AsyncConnection, ids: Sequence[str]
    ) -> dict[str, list[DestinationRecord]]:
        out: dict[str, list[DestinationRecord]] = {i: [] for i in ids}
        if not ids:
            return out
        rows = await conn.execute(
            select(D).where(D.c.schedule_id.in_(ids)).order_by(D.c.schedule_id, D.c.position)
        )
        for row in rows:
            out[row.schedule_id].append(_destination(row))
        return out

    async def get(self, schedule_id: str, key_id: str | None = None) -> ScheduleRecord | None:
        """The schedule, or None (also when ``key_id`` is given and does not own it)."""
        query = select(S).where(S.c.id == schedule_id)
        if key_id is not None:
            query = query.where(S.c.key_id == key_id)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            dest = await self._destinations(conn, [schedule_id])
        return schedule_from_row(row, dest[schedule_id])

    async def list_schedules(
        self,
        *,
        key_id: str | None = None,
        activity_id: str | None = None,
        participant_id: str | None = None,
        limit: int = 100,
        after_id: str | None = None,
    ) -> list[ScheduleRecord]:
        """Schedules ordered by id (page with ``after_id``), filtered as given."""
        query = select(S).order_by(S.c.id).limit(limit)
        if key_id is not None:
            query = query.where(S.c.key_id == key_id)
        if activity_id is not None:
            query = query.where(S.c.activity_id == activity_id)
        if participant_id is not None:
            query = query.where(S.c.participant_id == participant_id)
        if after_id is not None:
            query = query.where(S.c.id > after_id)
        async with self.db.connect() as conn:
            rows = list(await conn.execute(query))
            dest = await self._destinations(conn, [r.id for r in rows])
        return [schedule_from_row(r, dest[r.id]) for r in rows]

    async def set_state(
        self,
        schedule_id: str,
        *,
        state: str,
        next_fire_at: int | None,
        now: float,
        from_states: Sequence[str],
        also: InTransaction | None = None,
    ) -> bool:
        """Move to ``state`` if currently in one of ``from_states``; False otherwise. ``also``
        runs in the same transaction when the state changed."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(S)
                .where(S.c.id == schedule_id, S.c.state.in_(from_states))
                .values(state=state, next_fire_at=next_fire_at, updated_at=now)
            )
            if result.rowcount == 1 and also is not None:
                await also(conn)
        return bool(result.rowcount == 1)

    async def delete(self, schedule_id: str, *, also: InTransaction | None = None) -> bool:
        """Delete a schedule with its history; ``also`` runs in the same transaction when it
        existed."""
        async with self.db.transaction() as conn:
            # Children first: SQLite enforces the cascades only with foreign_keys=ON per
            # connection, and deleting explicitly keeps the two databases alike.
            occ = select(O.c.id).where(O.c.schedule_id == schedule_id).scalar_subquery()
            await conn.execute(delete(R).where(R.c.occurrence_id.in_(occ)))
            await conn.execute(delete(O).where(O.c.schedule_id == schedule_id))
            await conn.execute(delete(D).where(D.c.schedule_id == schedule_id))
            result = await conn.execute(delete(S).where(S.c.id == schedule_id))
            if result.rowcount == 1 and also is not None:
                await also(conn)
        return bool(result.rowcount == 1)

    async def history(self, schedule_id: str, limit: int = 100) -> list[OccurrenceRecord]:
        """The latest ``limit`` occurrences, newest first, with per-destination results."""
        async with self.db.connect() as conn:
            rows = list(
                await conn.execute(
                    select(O)
                    .where(O.c.schedule_id == schedule_id)
                    .order_by(O.c.scheduled_at.desc())
                    .limit(limit)
                )
            )
            ids = [r.id for r in rows]
            per: dict[int, list[DeliveryRecord]] = {i: [] for i in ids}
            if ids:
                drows = await conn.execute(
                    select(R, D.c.position)
                    .join(D, D.c.id == R.c.destination_id)
                    .where(R.c.occurrence_id.in_(ids))
                    .order_by(D.c.position)
                )
                for d in drows:
                    per[d.occurrence_id].append(
                        DeliveryRecord(d.destination_id, d.position, d.status, d.reason, d.at)
                    )
        return [
            OccurrenceRecord(
                r.id,
                r.schedule_id,
                int(r.scheduled_at),
                r.status,
                r.fired_at,
                r.completed_at,
                r.detail,
                tuple(per[r.id]),
            )
            for r in rows
        ]

    async def next_due(self) -> int | None:
        """The earliest ``next_fire_at`` of any schedule (None: nothing scheduled)."""
        async with self.db.connect() as conn:
            value = (await conn.execute(select(func.min(S.c.next_fire_at)))).scalar()
        return None if value is None else int(value)

    async def count_due(self, now: float) -> int:
        async with self.db.connect() as conn:
            value = await conn.execute(select(func.count()).where(S.c.next_fire_at <= now))
            return int(value.scalar_one())
