"""Repository of scheduled notifications: schedules, occurrence claims, delivery results.

Exactly-once claiming: an occurrence belongs to the scheduler whose transaction both advanced the
schedule's ``next_fire_at`` from the value it read (compare-and-set) and inserted the unique
``(schedule_id, scheduled_at)`` occurrence row. On PostgreSQL the due rows are also selected
``FOR UPDATE SKIP LOCKED`` so several schedulers share work instead of queueing on row locks;
on SQLite the database's single writer serialises claims. Rows are always touched in
``(next_fire_at, id)`` order, so two claimers cannot deadlock.

A claim carries a lease. A scheduler that dies mid-occurrence leaves the row ``claimed``; once the
lease expires another scheduler takes it over and sends only to destinations that have no
recorded result yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table, and_, bindparam, delete, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.db import Database
from lantern.store.schema.schedule import (
    schedule_deliveries,
    schedule_destinations,
    schedule_occurrences,
    schedules,
)

S, D, O, R = schedules, schedule_destinations, schedule_occurrences, schedule_deliveries  # noqa: E741

DELIVERED = "delivered"
DEAD_TOKEN = "dead_token"  # noqa: S105 (a status, not a secret)


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


@dataclass(frozen=True, slots=True)
class Advance:
    """What a claimer decided for one due schedule (computed by the schedule service)."""

    fire: Sequence[int]  # occurrences to claim and send
    missed: Sequence[tuple[int, str]]  # (scheduled_at, detail) to record as missed
    next_fire_at: int | None
    state: str


@dataclass(slots=True)
class ClaimedOccurrence:
    """An occurrence this scheduler owns, with the destinations still to send to."""

    occurrence_id: int
    schedule: ScheduleRecord
    scheduled_at: int
    destinations: list[tuple[int, str]] = field(default_factory=list)  # (destination id, token)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    occurrence_id: int
    destination_id: int
    status: str
    reason: str | None
    delivery_id: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Completion:
    """Close an occurrence; ``missed_detail`` set: unsent destinations are recorded as missed."""

    occurrence_id: int
    at: float
    missed_detail: str | None = None


def _schedule(row: object, destinations: Sequence[DestinationRecord] = ()) -> ScheduleRecord:
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

    def _insert_ignore(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """INSERT ... ON CONFLICT DO NOTHING for the dialect in use."""
        if self.db.is_sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    # -- schedules ----------------------------------------------------------------------------

    async def insert(self, record: ScheduleRecord, tokens: Sequence[str]) -> None:
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
        return _schedule(row, dest[schedule_id])

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
        return [_schedule(r, dest[r.id]) for r in rows]

    async def set_state(
        self,
        schedule_id: str,
        *,
        state: str,
        next_fire_at: int | None,
        now: float,
        from_states: Sequence[str],
    ) -> bool:
        """Move to ``state`` if currently in one of ``from_states``; False otherwise."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(S)
                .where(S.c.id == schedule_id, S.c.state.in_(from_states))
                .values(state=state, next_fire_at=next_fire_at, updated_at=now)
            )
        return bool(result.rowcount == 1)

    async def delete(self, schedule_id: str) -> bool:
        async with self.db.transaction() as conn:
            # Children first: SQLite enforces the cascades only with foreign_keys=ON per
            # connection, and deleting explicitly keeps the two databases alike.
            occ = select(O.c.id).where(O.c.schedule_id == schedule_id).scalar_subquery()
            await conn.execute(delete(R).where(R.c.occurrence_id.in_(occ)))
            await conn.execute(delete(O).where(O.c.schedule_id == schedule_id))
            await conn.execute(delete(D).where(D.c.schedule_id == schedule_id))
            result = await conn.execute(delete(S).where(S.c.id == schedule_id))
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

    # -- claiming -----------------------------------------------------------------------------

    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        owner: str,
        lease_until: float,
        advance: Callable[[ScheduleRecord], Advance],
    ) -> list[ClaimedOccurrence]:
        """Claim up to ``limit`` due schedules' occurrences in one transaction (see module doc)."""
        query = select(S).where(S.c.next_fire_at <= now).order_by(S.c.next_fire_at, S.c.id)
        query = query.limit(limit)
        if not self.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        claimed: list[ClaimedOccurrence] = []
        async with self.db.transaction() as conn:
            due = [_schedule(r) for r in await conn.execute(query)]
            for record in due:
                plan = advance(record)
                moved = await conn.execute(
                    update(S)
                    .where(S.c.id == record.id, S.c.next_fire_at == record.next_fire_at)
                    .values(next_fire_at=plan.next_fire_at, state=plan.state)
                )
                if moved.rowcount != 1:
                    continue  # another scheduler advanced, paused or deleted it meanwhile
                for at, detail in plan.missed:
                    await conn.execute(
                        self._insert_ignore(O).values(
                            schedule_id=record.id,
                            scheduled_at=at,
                            status="missed",
                            completed_at=now,
                            detail=detail[:256],
                        )
                    )
                for at in plan.fire:
                    row = (
                        await conn.execute(
                            self._insert_ignore(O)
                            .values(
                                schedule_id=record.id,
                                scheduled_at=at,
                                status="claimed",
                                claimed_by=owner,
                                lease_until=lease_until,
                                fired_at=now,
                            )
                            .returning(O.c.id)
                        )
                    ).first()
                    if row is not None:  # None: this slot was already claimed once
                        claimed.append(ClaimedOccurrence(int(row[0]), record, at))
            await self._fill_destinations(conn, claimed)
        return claimed

    async def reclaim_expired(
        self, *, now: float, limit: int, owner: str, lease_until: float
    ) -> list[ClaimedOccurrence]:
        """Take over occurrences whose claimer's lease ran out (it died mid-occurrence)."""
        query = (
            select(
                O.c.id.label("occ_id"),
                O.c.scheduled_at.label("occ_at"),
                O.c.lease_until.label("occ_lease"),
                S,
            )
            .join(S, S.c.id == O.c.schedule_id)
            .where(O.c.status == "claimed", O.c.lease_until < now)
            .order_by(O.c.id)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            query = query.with_for_update(of=O, skip_locked=True)
        claimed: list[ClaimedOccurrence] = []
        async with self.db.transaction() as conn:
            for row in list(await conn.execute(query)):
                taken = await conn.execute(
                    update(O)
                    .where(
                        O.c.id == row.occ_id,
                        O.c.status == "claimed",
                        O.c.lease_until == row.occ_lease,
                    )
                    .values(claimed_by=owner, lease_until=lease_until)
                )
                if taken.rowcount == 1:
                    claimed.append(
                        ClaimedOccurrence(int(row.occ_id), _schedule(row), int(row.occ_at))
                    )
            await self._fill_destinations(conn, claimed)
        return claimed

    async def _fill_destinations(
        self, conn: AsyncConnection, claimed: list[ClaimedOccurrence]
    ) -> None:
        """Active destinations of each claim that have no recorded result for it yet."""
        if not claimed:
            return
        by_schedule: dict[str, list[tuple[int, str]]] = {}
        ids = list({c.schedule.id for c in claimed})
        for start in range(0, len(ids), 500):
            rows = await conn.execute(
                select(D.c.schedule_id, D.c.id, D.c.token)
                .where(D.c.schedule_id.in_(ids[start : start + 500]), D.c.active.is_(True))
                .order_by(D.c.schedule_id, D.c.position)
            )
            for r in rows:
                by_schedule.setdefault(r.schedule_id, []).append((int(r.id), r.token))
        done: set[tuple[int, int]] = set()
        occ_ids = [c.occurrence_id for c in claimed]
        for start in range(0, len(occ_ids), 500):
            rows = await conn.execute(
                select(R.c.occurrence_id, R.c.destination_id).where(
                    R.c.occurrence_id.in_(occ_ids[start : start + 500])
                )
            )
            done.update((int(r[0]), int(r[1])) for r in rows)
        for c in claimed:
            c.destinations = [
                d for d in by_schedule.get(c.schedule.id, []) if (c.occurrence_id, d[0]) not in done
            ]

    # -- results ------------------------------------------------------------------------------

    async def record(
        self, results: Sequence[DeliveryResult], completions: Sequence[Completion]
    ) -> None:
        """Durably record results and close occurrences, in one transaction (group commit)."""
        async with self.db.transaction() as conn:
            if results:
                await conn.execute(
                    self._insert_ignore(R),
                    [
                        {
                            "occurrence_id": r.occurrence_id,
                            "destination_id": r.destination_id,
                            "status": r.status,
                            "reason": r.reason,
                            "delivery_id": r.delivery_id,
                            "at": r.at,
                        }
                        for r in results
                    ],
                )
            for r in results:
                if r.status == DEAD_TOKEN:
                    await self._deactivate(conn, r)
            await self._complete(conn, completions)

    async def _deactivate(self, conn: AsyncConnection, result: DeliveryResult) -> None:
        await conn.execute(
            update(D)
            .where(D.c.id == result.destination_id, D.c.active.is_(True))
            .values(
                active=False,
                deactivated_at=result.at,
                deactivated_reason=(result.reason or "dead token")[:128],
            )
        )
        schedule_id = (
            await conn.execute(select(D.c.schedule_id).where(D.c.id == result.destination_id))
        ).scalar_one()
        remaining = (
            await conn.execute(
                select(func.count()).where(D.c.schedule_id == schedule_id, D.c.active.is_(True))
            )
        ).scalar_one()
        if remaining == 0:
            # Nothing left to send to: stop instead of recording empty occurrences forever.
            await conn.execute(
                update(S)
                .where(S.c.id == schedule_id, S.c.state.in_(("active", "paused")))
                .values(state="stopped", next_fire_at=None, updated_at=result.at)
            )

    async def _complete(self, conn: AsyncConnection, completions: Sequence[Completion]) -> None:
        """Close occurrences: status from all their recorded results (a taken-over occurrence
        has results from two schedulers). Set-based: a few statements per batch."""
        for completion in completions:
            if completion.missed_detail is None:
                continue
            await conn.execute(
                self._insert_ignore(R).from_select(
                    ["occurrence_id", "destination_id", "status", "reason", "at"],
                    select(
                        O.c.id,
                        D.c.id,
                        literal("missed", R.c.status.type),
                        literal(completion.missed_detail[:128], R.c.reason.type),
                        literal(completion.at, R.c.at.type),
                    )
                    .join(D, D.c.schedule_id == O.c.schedule_id)
                    .where(O.c.id == completion.occurrence_id, D.c.active.is_(True)),
                )
            )
        statuses: dict[int, list[str]] = {c.occurrence_id: [] for c in completions}
        ids = list(statuses)
        for start in range(0, len(ids), 500):
            rows = await conn.execute(
                select(R.c.occurrence_id, R.c.status).where(
                    R.c.occurrence_id.in_(ids[start : start + 500])
                )
            )
            for occurrence_id, status in rows:
                statuses[int(occurrence_id)].append(status)
        params = []
        for completion in completions:
            got = statuses[completion.occurrence_id]
            delivered = sum(1 for s in got if s == DELIVERED)
            if not got:
                status, detail = "skipped", "no active destination"
            elif delivered == len(got):
                status, detail = "fired", None
            elif delivered:
                status, detail = "partial", f"{delivered} of {len(got)} destinations delivered"
            elif all(s == "missed" for s in got):
                status, detail = "missed", completion.missed_detail
            else:
                status, detail = "failed", None
            params.append(
                {
                    "b_id": completion.occurrence_id,
                    "b_status": status,
                    "b_at": completion.at,
                    "b_detail": None if detail is None else detail[:256],
                }
            )
        if params:
            await conn.execute(
                update(O)
                .where(O.c.id == bindparam("b_id"), O.c.status == "claimed")
                .values(
                    status=bindparam("b_status"),
                    completed_at=bindparam("b_at"),
                    lease_until=None,
                    detail=bindparam("b_detail"),
                ),
                params,
            )

    async def release(self, occurrence_ids: Sequence[int], owner: str) -> None:
        """Expire this scheduler's leases at once (clean shutdown): the next one takes over."""
        if not occurrence_ids:
            return
        async with self.db.transaction() as conn:
            await conn.execute(
                update(O)
                .where(
                    and_(
                        O.c.id.in_(list(occurrence_ids)),
                        O.c.status == "claimed",
                        O.c.claimed_by == owner,
                    )
                )
                .values(lease_until=0.0)
            )
