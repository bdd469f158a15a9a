"""The names of registered things, in memory, for access checks that run on every message.

Anonymous clients (development listeners, default access) must not touch a device's topics,
``<thing>`` and ``<thing>/...``; no MQTT user or anonymous client may connect with a thing's
name as client id (that would take over the device's session). Those checks look at a topic's
first level, or a client id, in :class:`ThingNames`, a set: a registry query per message would be
far too slow, and the authorizer's checks are synchronous.

How the set stays correct (a name missing from it would open a device's topics; an extra name
only closes topics nobody should use):

* loaded in full before the first anonymous or password client is admitted
  (:meth:`ThingNames.ensure_loaded`, awaited by the authenticator and at gateway start);
* added to at once by the code paths of this process that make things exist: RegisterThing
  (before its reply: the device cannot connect or be written to before) and a device's CONNECT
  (a thing connected here is always in the set);
* polled every ``interval`` seconds for things other processes created (the CLI, other server
  nodes): names with ``created_at`` after the previous poll, minus ``slack`` seconds for clock
  skew and slow commits (an indexed query returning only recent names);
* never shrunk: a deleted thing's name stays excluded until the server restarts (fails closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from lantern.store import Database
from lantern.store.registry import RegistryStore, RegistryUnits

__all__ = ["ThingNames"]

log = logging.getLogger(__name__)

_SHARED = "$share/"


def first_level(topic: str) -> str:
    """The first level of a topic name or filter (``$share/<group>/`` removed)."""
    if topic.startswith(_SHARED):
        topic = topic[len(_SHARED) :].partition("/")[2]
    return topic.partition("/")[0]


class ThingNames:
    """The set of registered thing names (see the module docstring for how it stays correct),
    read from the registry (``units``; by default the database's
    :class:`~lantern.store.registry.RegistryStore`)."""

    def __init__(
        self,
        db: Database,
        *,
        slack: float = 60.0,
        clock: Callable[[], float] = time.time,
        units: RegistryUnits | None = None,
    ) -> None:
        self.db = db
        self.units = units if units is not None else RegistryStore(db.transactions)
        self.slack = slack
        self.clock = clock
        self._names: set[str] = set()
        self._loaded = False
        self._loading: asyncio.Lock | None = None
        self._since = 0.0
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._names

    @property
    def loaded(self) -> bool:
        return self._loaded

    def add(self, name: str) -> None:
        """A thing now exists (called before anything can use its topics)."""
        self._names.add(name)

    def covers(self, topic: str) -> bool:
        """Is ``topic`` (a name or a filter) a device's: its first level a thing name?"""
        return first_level(topic) in self._names

    async def ensure_loaded(self) -> None:
        """Load every name once (concurrent callers wait for the same load)."""
        if self._loaded:
            return
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._loaded:
                return
            started = self.clock()
            self._names.update(await self.units.read(lambda uow: uow.thing_names()))
            self._since = started - self.slack
            self._loaded = True
            log.info("%d thing names loaded for access checks", len(self._names))

    async def poll_once(self) -> int:
        """Add the things created since the last poll (minus the slack); returns how many were
        new to the set."""
        await self.ensure_loaded()
        started = self.clock()
        since = self._since
        names = await self.units.read(lambda uow: uow.thing_names(since))
        fresh = names - self._names
        self._names.update(fresh)
        self._since = started - self.slack
        return len(fresh)

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                log.exception("polling for new things failed; retrying")
            await asyncio.sleep(interval)

    def start(self, interval: float) -> None:
        """Poll every ``interval`` seconds until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
