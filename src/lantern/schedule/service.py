"""Create, read, pause, resume and delete schedules on behalf of an API key.

An owner is any object with the API key's ``id`` and ``scope`` (``lantern.push.keys.ApiKey`` in
production); ``None`` means the administrator (CLI), who sees every schedule. A key only ever sees
its own schedules: another key's schedule id is answered as not found.

Changes are recorded in the audit log (``schedule.create``, ``schedule.pause``,
``schedule.resume``, ``schedule.delete``) in their transaction: by ``api-key:<id>`` for a key,
by the current actor for the administrator. Titles, messages and destinations never are.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol

from lantern.audit import Actor, AuditedAction, api_key_actor, audited
from lantern.schedule.clock import Clock
from lantern.schedule.errors import (
    ProviderNotConfigured,
    ScheduleConflict,
    ScheduleNotFound,
    ScheduleScopeDenied,
)
from lantern.schedule.model import (
    canonical_scheme,
    occurrence_view,
    parse_request,
    rule_of,
    schedule_view,
    stored_times,
)
from lantern.store import Database
from lantern.store.schedule import ScheduleRecord, ScheduleStore


class Owner(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def scope(self) -> str: ...


SchemesAllowed = Callable[[Any], frozenset[str]]
SchemesConfigured = Callable[[], frozenset[str]]


def new_schedule_id() -> str:
    return "sch_" + secrets.token_hex(8)


class ScheduleService:
    """The schedules API: every method validates, then changes the store or nothing.

    With ``schemes_configured`` (the schemes this gateway has a provider for), a schedule with a
    destination no provider can send to is refused (:class:`ProviderNotConfigured`); without it
    (tests, ``lantern schedules create --allow-unconfigured``) it is accepted."""

    def __init__(
        self,
        store: ScheduleStore,
        clock: Clock,
        schemes_allowed: SchemesAllowed,
        on_change: Callable[[], None] | None = None,
        *,
        schemes_configured: SchemesConfigured | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.schemes_allowed = schemes_allowed
        self.on_change = on_change  # wakes the scheduler loop (a new schedule may be due soon)
        self.schemes_configured = schemes_configured

    @classmethod
    def on(
        cls,
        db: Database,
        clock: Clock,
        schemes_allowed: SchemesAllowed,
        on_change: Callable[[], None] | None = None,
        *,
        schemes_configured: SchemesConfigured | None = None,
    ) -> ScheduleService:
        """The service over ``db``'s schedule store (callers need not know the store)."""
        store = ScheduleStore(db)
        return cls(store, clock, schemes_allowed, on_change, schemes_configured=schemes_configured)

    @staticmethod
    def _actor(owner: Owner | None) -> Actor | None:
        """Who acts: the owning key, or (None) the current actor (the administrator)."""
        return None if owner is None else api_key_actor(owner.id)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def create(self, owner: Owner, body: Any) -> dict[str, Any]:
        """Validate ``body`` and store a schedule owned by ``owner``; returns its view.

        Raises ScheduleInvalid (a field; ProviderNotConfigured for a destination this gateway
        cannot send to) or ScheduleScopeDenied (a destination outside the key's scope).
        """
        async with audited(
            self.store.db, "schedule.create", actor=self._actor(owner), key=owner.id
        ) as act:
            record = await self._create(owner, body, act)
        self._changed()
        return await self.get(owner, record.id)

    async def _create(self, owner: Owner, body: Any, act: AuditedAction) -> ScheduleRecord:
        now = self.clock.now()
        spec = parse_request(body, now=now)
        allowed = self.schemes_allowed(owner.scope)
        for destination in spec.destinations:
            scheme = canonical_scheme(destination)
            if scheme not in allowed:
                raise ScheduleScopeDenied(
                    f"destinations: a key of scope {owner.scope!r} may not send to {scheme}: "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        configured = self.schemes_configured() if self.schemes_configured else None
        for destination in spec.destinations:
            scheme = canonical_scheme(destination)
            if configured is not None and scheme not in configured:
                raise ProviderNotConfigured(scheme)
        record = ScheduleRecord(
            id=new_schedule_id(),
            key_id=owner.id,
            activity_id=spec.activity_id,
            participant_id=spec.participant_id,
            title=spec.title,
            message=spec.message,
            timezone=spec.timezone,
            start_at=spec.rule.start_at,
            end_at=spec.rule.end_at,
            cron=spec.rule.cron,
            repeat=spec.rule.repeat,
            times=stored_times(spec.rule) if spec.rule.cron is None else None,
            state="active",
            # Due instants are whole seconds; "after now" so creating never fires the past.
            next_fire_at=spec.rule.next_after(now),
            created_at=now,
            updated_at=now,
        )
        act.target = record.id
        act.details.update(
            activity_id=spec.activity_id,
            participant_id=spec.participant_id,
            destinations=len(spec.destinations),
        )
        await self.store.insert(record, spec.destinations, also=act.record)
        return record

    async def _record(self, owner: Owner | None, schedule_id: str) -> ScheduleRecord:
        record = await self.store.get(schedule_id, None if owner is None else owner.id)
        if record is None:
            raise ScheduleNotFound(f"no schedule {schedule_id[:40]!r} for this key")
        return record

    async def get(self, owner: Owner | None, schedule_id: str) -> dict[str, Any]:
        record = await self._record(owner, schedule_id)
        return schedule_view(record, now=self.clock.now())

    async def list_schedules(
        self,
        owner: Owner | None,
        *,
        activity_id: str | None = None,
        participant_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        records = await self.store.list_schedules(
            key_id=None if owner is None else owner.id,
            activity_id=activity_id,
            participant_id=participant_id,
            limit=limit,
            after_id=after,
        )
        now = self.clock.now()
        return [schedule_view(r, now=now) for r in records]

    async def pause(self, owner: Owner | None, schedule_id: str) -> dict[str, Any]:
        """Stop firing (idempotent). Occurrences while paused are neither sent nor recorded."""
        async with audited(
            self.store.db, "schedule.pause", schedule_id, actor=self._actor(owner)
        ) as act:
            record = await self._record(owner, schedule_id)
            act.details["state"] = record.state
            if record.state == "active":
                await self.store.set_state(
                    schedule_id,
                    state="paused",
                    next_fire_at=None,
                    now=self.clock.now(),
                    from_states=("active",),
                    also=act.record,
                )
        return await self.get(owner, schedule_id)

    async def resume(self, owner: Owner | None, schedule_id: str) -> dict[str, Any]:
        """Fire again from the next occurrence after now (idempotent)."""
        async with audited(
            self.store.db, "schedule.resume", schedule_id, actor=self._actor(owner)
        ) as act:
            record = await self._record(owner, schedule_id)
            act.details["state"] = record.state
            if record.state == "stopped":
                raise ScheduleConflict(
                    "the schedule stopped because every destination's token is dead; "
                    "create a new schedule with current tokens"
                )
            if record.state == "paused":
                now = self.clock.now()
                nxt = rule_of(record).next_after(now)
                await self.store.set_state(
                    schedule_id,
                    state="active" if nxt is not None else "finished",
                    next_fire_at=nxt,
                    now=now,
                    from_states=("paused",),
                    also=act.record,
                )
                self._changed()
        return await self.get(owner, schedule_id)

    async def delete(self, owner: Owner | None, schedule_id: str) -> None:
        async with audited(
            self.store.db, "schedule.delete", schedule_id, actor=self._actor(owner)
        ) as act:
            record = await self._record(owner, schedule_id)
            act.details["key"] = record.key_id
            if not await self.store.delete(schedule_id, also=act.record):
                raise ScheduleNotFound(f"no schedule {schedule_id[:40]!r} for this key")

    async def history(
        self, owner: Owner | None, schedule_id: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        record = await self._record(owner, schedule_id)
        return [
            occurrence_view(o, record.timezone)
            for o in await self.store.history(schedule_id, limit)
        ]
