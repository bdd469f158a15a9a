"""The read side of the schedule service, shared by the HTTP API and the command line, for the
administrator (every key's schedules): schedules with their next fire times, and occurrence
history, as the JSON views the API answers with.

Callers pass the database; the store stays behind this module.
"""

from __future__ import annotations

from typing import Any

from lantern.schedule.clock import Clock, SystemClock
from lantern.schedule.service import ScheduleService
from lantern.store import Database

__all__ = ["ScheduleQueries"]


class ScheduleQueries:
    """Read-only questions about schedules; ``key_id`` narrows to one API key's."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        # Reads never check a destination's scheme: no scope table needed.
        self._service = ScheduleService.on(db, clock or SystemClock(), _no_schemes)

    async def schedule(self, schedule_id: str) -> dict[str, Any]:
        """One schedule's view; :class:`~lantern.schedule.errors.ScheduleNotFound` if none."""
        return await self._service.get(None, schedule_id)

    async def schedules(
        self,
        *,
        key_id: str | None = None,
        activity_id: str | None = None,
        participant_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Schedules in id order, optionally of one key, activity or participant."""
        owner = None if key_id is None else _KeyOwner(key_id)
        return await self._service.list_schedules(
            owner, activity_id=activity_id, participant_id=participant_id, limit=limit, after=after
        )

    async def history(self, schedule_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` occurrences of the schedule."""
        return await self._service.history(None, schedule_id, limit)


class _KeyOwner:
    """An owner that only narrows reads to one key (its scope is never checked here)."""

    def __init__(self, key_id: str) -> None:
        self.id = key_id
        self.scope = "internal"


def _no_schemes(_scope: object) -> frozenset[str]:
    return frozenset()
