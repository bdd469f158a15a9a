"""The schedule component: ``/schedules`` routes and the scheduler loop, delivering through the
push gateway's dispatcher as the owning API key (the push component's dispatcher and keys).

Test knob: ``LANTERN_TEST_SCHEDULE_CLOCK="<ISO 8601 instant>@<speed>"`` runs this component's
clock from that instant, ``speed`` times faster than real time, so an end-to-end test can watch
reminders fire across a DST change in seconds. ``…@<speed>@<epoch seconds>`` pins the instant to
that real moment instead of the process start, so the nodes of a test cluster share one clock.
Never set it in production.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter

from lantern.api.push import api_key_dependency
from lantern.api.schedules import schedules_router
from lantern.errors import ConfigError
from lantern.push.dispatch import PushDispatcher
from lantern.push.errors import PushRequestInvalid, ScopeDenied
from lantern.push.keys import ApiKey, KeyService
from lantern.push.scopes import parse_scope, schemes_allowed
from lantern.runtime.component import Component, Platform
from lantern.runtime.service_metrics import SchedulerCollector
from lantern.schedule import Clock, ScaledClock, Scheduler, ScheduleService, SystemClock
from lantern.schedule.payloads import DeliveryJob, build_payload
from lantern.schedule.scheduler import Outcome
from lantern.store.schedule import ScheduleStore

log = logging.getLogger("lantern.schedule")
CLOCK_ENV = "LANTERN_TEST_SCHEDULE_CLOCK"


@dataclass(frozen=True, slots=True)
class LocalOutcome:
    """An outcome decided before reaching the dispatcher (revoked key, scope, bad payload)."""

    status: str
    reason: str | None
    delivery_id: str | None = None


class DispatcherDeliver:
    """Sends one destination of an occurrence through the push dispatcher, as its owning key.

    The key is looked up by id for every occurrence (cached briefly): a revoked key's schedules
    stop sending at once and say so in their history.
    """

    def __init__(
        self, dispatcher: PushDispatcher, keys: KeyService, cache_seconds: float = 5.0
    ) -> None:
        self.dispatcher = dispatcher
        self.keys = keys
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def _key(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        row = await self.keys.store.by_id(key_id)
        key = None
        if row is not None and row.active_at(time.time()):
            key = ApiKey(row.id, row.name, parse_scope(row.scope), row.rate_per_minute)
        self._cache[key_id] = (now, key)
        return key

    async def __call__(self, job: DeliveryJob) -> Outcome:
        key = await self._key(job.key_id)
        if key is None:
            return LocalOutcome("key_revoked", "the owning API key is revoked or unknown")
        try:
            return await self.dispatcher.dispatch(key, job.destination, build_payload(job))
        except ScopeDenied:
            return LocalOutcome("scope_denied", f"scope does not allow {job.scheme}")
        except PushRequestInvalid as exc:
            return LocalOutcome("caller_error", f"{exc.code}: {exc.field}")


def clock_from_environment() -> Clock:
    value = os.environ.get(CLOCK_ENV)
    if not value:
        return SystemClock()
    instant, _, rest = value.partition("@")
    speed, _, since = rest.partition("@")
    try:
        start = datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp()
        return ScaledClock(start, float(speed or "1"), float(since) if since else None)
    except ValueError as exc:
        raise ConfigError(
            f"{CLOCK_ENV}={value!r}: expected '<ISO instant>@<speed>[@<epoch seconds>]' ({exc})"
        ) from None


class ScheduleComponent(Component):
    """Scheduled notifications: the API always, the loop when ``schedule.enabled``."""

    name = "schedule"

    def __init__(self, platform: Platform, dispatcher: PushDispatcher, keys: KeyService) -> None:
        super().__init__(platform)
        self.settings = platform.settings.schedule
        self.keys = keys
        self.clock = clock_from_environment()
        store = ScheduleStore(platform.db)
        self.scheduler = Scheduler(
            store, DispatcherDeliver(dispatcher, keys), self.clock, self.settings
        )
        platform.metrics.register(SchedulerCollector(self.scheduler))
        self.service = ScheduleService(
            store,
            self.clock,
            schemes_allowed,
            on_change=self.scheduler.wake,
            schemes_configured=lambda: frozenset(dispatcher.providers),
        )

    def routers(self) -> Sequence[APIRouter]:
        return [schedules_router(self.service, api_key_dependency(self.keys))]

    async def start(self) -> None:
        if self.settings.enabled:
            self.scheduler.start()

    async def stop(self) -> None:
        if self.settings.enabled:
            await self.scheduler.stop()

    def describe(self) -> list[str]:
        loop = (
            f"scheduler on (tick {self.settings.tick_seconds:g} s, "
            f"grace {self.settings.misfire_grace_seconds:g} s)"
            if self.settings.enabled
            else "scheduler off in this process"
        )
        return [f"schedules        {self.platform.http_base_url}/schedules  ({loop})"]
