"""Claims of scheduled occurrences: claim, take over, renew, release, record results. Set-based.

Every method is one transaction of a few statements per batch, whatever its size, run as a unit
of work of :attr:`Database.transactions` (:mod:`lantern.store.transactions`): on a SQLite file,
on the database's writer thread with ``BEGIN IMMEDIATE`` (the batch reads and writes under the
write lock); on PostgreSQL (or in-memory SQLite) inside one :meth:`Database.transaction`.

Exactly once: an occurrence belongs to the scheduler whose transaction inserted its unique
``(schedule_id, scheduled_at)`` row (``INSERT ... ON CONFLICT DO NOTHING RETURNING``: a slot that
exists already comes back empty, so it is never sent twice). The due schedules are read and
advanced in the same transaction, under ``BEGIN IMMEDIATE`` on SQLite and ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (several schedulers share work instead of queueing on row locks); the
advance still compares ``next_fire_at`` with the value read, so a stale decision never lands.
Rows are read in ``(next_fire_at, id)`` order, so two claimers cannot deadlock.

A claim carries a lease, renewed while its scheduler works on it. A scheduler that dies leaves
the row ``claimed``; once the lease expires another takes it over and sends only to destinations
without a recorded result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lantern.store.db import Database
from lantern.store.schedule import ScheduleRecord, schedule_from_row
from lantern.store.schema.schedule import (
    schedule_deliveries,
    schedule_destinations,
    schedule_occurrences,
    schedules,
)

__all__ = [
    "DEAD_TOKEN",
    "DELIVERED",
    "Advance",
    "ClaimedOccurrence",
    "Completion",
    "DeliveryResult",
    "OccurrenceClaims",
]

S, D, O, R = schedules, schedule_destinations, schedule_occurrences, schedule_deliveries  # noqa: E741

DELIVERED = "delivered"
DEAD_TOKEN = "dead_token"  # noqa: S105 (a status, not a secret)
_CHUNK = 500  # rows per multi-row statement: far below SQLite's 32,766 bound parameters


@dataclass(frozen=True, slots=True)
class Advance:
    """What a claimer decided for one due schedule (computed by the scheduler)."""

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


def _chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


class OccurrenceClaims:
    """The scheduler's side of the schedule tables."""

    def __init__(self, db: Database) -> None:
        self._postgres = not db.is_sqlite
        self._tx = db.transactions

    def _insert_ignore(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """INSERT ... ON CONFLICT DO NOTHING for the dialect in use."""
        if self._postgres:
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

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
        """Claim up to ``limit`` due schedules' occurrences in one transaction (module doc).

        ``advance`` (pure, no I/O) decides each schedule's fate; it runs inside the transaction.
        """

        def claim(conn: Connection) -> list[ClaimedOccurrence]:
            query = select(S).where(S.c.next_fire_at <= now).order_by(S.c.next_fire_at)
            query = query.limit(limit)
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            due = [schedule_from_row(r) for r in conn.execute(query)]
            if not due:
                return []
            plans = [(record, advance(record)) for record in due]
            conn.execute(
                update(S)
                .where(S.c.id == bindparam("b_id"), S.c.next_fire_at == bindparam("b_old"))
                .values(next_fire_at=bindparam("b_next"), state=bindparam("b_state")),
                [
                    {
                        "b_id": r.id,
                        "b_old": r.next_fire_at,
                        "b_next": p.next_fire_at,
                        "b_state": p.state,
                    }
                    for r, p in plans
                ],
            )
            rows: list[dict[str, Any]] = []
            for record, plan in plans:
                rows.extend(
                    {
                        "schedule_id": record.id,
                        "scheduled_at": at,
                        "status": "missed",
                        "claimed_by": None,
                        "lease_until": None,
                        "fired_at": None,
                        "completed_at": now,
                        "detail": detail[:256],
                    }
                    for at, detail in plan.missed
                )
                rows.extend(
                    {
                        "schedule_id": record.id,
                        "scheduled_at": at,
                        "status": "claimed",
                        "claimed_by": owner,
                        "lease_until": lease_until,
                        "fired_at": now,
                        "completed_at": None,
                        "detail": None,
                    }
                    for at in plan.fire
                )
            # executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs ("insert many
            # values") compiled once. A slot that exists already is not returned: it was
            # claimed once before.
            returned = conn.execute(
                self._insert_ignore(O).returning(
                    O.c.id, O.c.schedule_id, O.c.scheduled_at, O.c.status
                ),
                rows,
            )
            inserted = {
                (r.schedule_id, int(r.scheduled_at)): int(r.id)
                for r in returned
                if r.status == "claimed"
            }
            claimed = [
                ClaimedOccurrence(inserted[(record.id, at)], record, at)
                for record, plan in plans
                for at in plan.fire
                if (record.id, at) in inserted
            ]
            self._fill_destinations(conn, claimed, fresh=True)
            return claimed

        return await self._tx.write(claim)

    async def reclaim_expired(
        self, *, now: float, limit: int, owner: str, lease_until: float
    ) -> list[ClaimedOccurrence]:
        """Take over occurrences whose claimer's lease ran out (it died mid-occurrence)."""

        def reclaim(conn: Connection) -> list[ClaimedOccurrence]:
            query = (
                select(O.c.id.label("occ_id"), O.c.scheduled_at.label("occ_at"), S)
                .join(S, S.c.id == O.c.schedule_id)
                .where(O.c.status == "claimed", O.c.lease_until < now)
                .order_by(O.c.id)
                .limit(limit)
            )
            if self._postgres:
                query = query.with_for_update(of=O, skip_locked=True)
            rows = list(conn.execute(query))
            if not rows:
                return []
            taken: set[int] = set()
            for chunk in _chunks([int(r.occ_id) for r in rows]):
                taken.update(
                    int(i)
                    for (i,) in conn.execute(
                        update(O)
                        .where(O.c.id.in_(chunk), O.c.status == "claimed", O.c.lease_until < now)
                        .values(claimed_by=owner, lease_until=lease_until)
                        .returning(O.c.id)
                    )
                )
            claimed = [
                ClaimedOccurrence(int(r.occ_id), schedule_from_row(r), int(r.occ_at))
                for r in rows
                if int(r.occ_id) in taken
            ]
            self._fill_destinations(conn, claimed, fresh=False)
            return claimed

        return await self._tx.write(reclaim)

    @staticmethod
    def _fill_destinations(
        conn: Connection, claimed: list[ClaimedOccurrence], *, fresh: bool
    ) -> None:
        """Active destinations of each claim without a recorded result for it (a fresh claim
        has none yet)."""
        if not claimed:
            return
        by_schedule: dict[str, list[tuple[int, str]]] = {}
        for chunk in _chunks(list({c.schedule.id for c in claimed})):
            rows = conn.execute(
                select(D.c.schedule_id, D.c.id, D.c.token)
                .where(D.c.schedule_id.in_(chunk), D.c.active.is_(True))
                .order_by(D.c.schedule_id, D.c.position)
            )
            for r in rows:
                by_schedule.setdefault(r.schedule_id, []).append((int(r.id), r.token))
        done: set[tuple[int, int]] = set()
        if not fresh:
            for chunk in _chunks([c.occurrence_id for c in claimed]):
                rows = conn.execute(
                    select(R.c.occurrence_id, R.c.destination_id).where(
                        R.c.occurrence_id.in_(chunk)
                    )
                )
                done.update((int(r[0]), int(r[1])) for r in rows)
        for c in claimed:
            c.destinations = [
                d for d in by_schedule.get(c.schedule.id, []) if (c.occurrence_id, d[0]) not in done
            ]

    async def renew(
        self, occurrence_ids: Sequence[int], owner: str, lease_until: float
    ) -> set[int]:
        """Extend this scheduler's leases; returns the ids it still holds (others were taken
        over after their lease ran out, or are closed)."""
        if not occurrence_ids:
            return set()

        def renew(conn: Connection) -> set[int]:
            held: set[int] = set()
            for chunk in _chunks(list(occurrence_ids)):
                held.update(
                    int(i)
                    for (i,) in conn.execute(
                        update(O)
                        .where(O.c.id.in_(chunk), O.c.status == "claimed", O.c.claimed_by == owner)
                        .values(lease_until=lease_until)
                        .returning(O.c.id)
                    )
                )
            return held

        return await self._tx.write(renew)

    async def release(self, occurrence_ids: Sequence[int], owner: str) -> None:
        """Expire this scheduler's leases at once (clean shutdown): the next one takes over."""
        if not occurrence_ids:
            return

        def release(conn: Connection) -> None:
            for chunk in _chunks(list(occurrence_ids)):
                conn.execute(
                    update(O)
                    .where(
                        and_(O.c.id.in_(chunk), O.c.status == "claimed", O.c.claimed_by == owner)
                    )
                    .values(lease_until=0.0)
                )

        await self._tx.write(release)

    # -- results ------------------------------------------------------------------------------

    async def record(
        self, results: Sequence[DeliveryResult], completions: Sequence[Completion]
    ) -> None:
        """Durably record results and close occurrences, in one transaction (group commit)."""

        def record(conn: Connection) -> None:
            if results:
                conn.execute(
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
                    self._deactivate(conn, r)
            self._complete(conn, completions)

        await self._tx.write(record)

    @staticmethod
    def _deactivate(conn: Connection, result: DeliveryResult) -> None:
        conn.execute(
            update(D)
            .where(D.c.id == result.destination_id, D.c.active.is_(True))
            .values(
                active=False,
                deactivated_at=result.at,
                deactivated_reason=(result.reason or "dead token")[:128],
            )
        )
        schedule_id = conn.execute(
            select(D.c.schedule_id).where(D.c.id == result.destination_id)
        ).scalar_one()
        remaining = conn.execute(
            select(func.count()).where(D.c.schedule_id == schedule_id, D.c.active.is_(True))
        ).scalar_one()
        if remaining == 0:
            # Nothing left to send to: stop instead of recording empty occurrences forever.
            conn.execute(
                update(S)
                .where(S.c.id == schedule_id, S.c.state.in_(("active", "paused")))
                .values(state="stopped", next_fire_at=None, updated_at=result.at)
            )

    def _complete(self, conn: Connection, completions: Sequence[Completion]) -> None:
        """Close occurrences: status from all their recorded results (a taken-over occurrence
        has results from two schedulers). Set-based: a few statements per batch."""
        for completion in completions:
            if completion.missed_detail is None:
                continue
            conn.execute(
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
        for chunk in _chunks(list(statuses)):
            rows = conn.execute(
                select(R.c.occurrence_id, R.c.status).where(R.c.occurrence_id.in_(chunk))
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
            conn.execute(
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
