"""Failed admin authentications (a wrong or missing admin token on the HTTP API), recorded as
``auth.failed`` entries by actor ``unknown``, outcome ``denied``, with the client's address.

So that a flood cannot fill the disk, there is at most one entry per address per window (a
minute, in this process): an address's first failure writes an entry with ``{"count": 1}`` and
opens its window; later failures within the window raise that entry's count, written at most
once per ``flush_delay`` seconds (and when the server stops). Beyond ``max_addresses`` addresses
with an open window, the rest share one entry with address ``*``. The entry's target is the
method and path of the first failed request (never its query string or headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lantern.audit.context import UNKNOWN, Actor
from lantern.audit.recorder import DENIED, write_entry
from lantern.store import Database
from lantern.store import audit as repo

__all__ = ["AUTH_FAILED", "AuthFailures"]

log = logging.getLogger(__name__)

AUTH_FAILED = "auth.failed"
OTHERS = "*"


@dataclass
class _Slot:
    """One address's entry in the current window."""

    opened: float  # when the window began
    entry_id: int | None  # None while its insert is in flight
    count: int
    written: int  # the count the row holds


class AuthFailures:
    """Rate-limited recorder of failed admin authentications (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        window_seconds: float = 60.0,
        max_addresses: int = 100,
        flush_delay: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.window_seconds = window_seconds
        self.max_addresses = max_addresses
        self.flush_delay = flush_delay
        self.clock = clock
        self._slots: dict[str, _Slot] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    async def failed(self, remote: str | None, what: str) -> None:
        """Count one failed authentication from ``remote`` (``what``: "METHOD /path").
        Never raises: a failure to write is logged."""
        try:
            await self._failed(remote or UNKNOWN, what)
        except Exception:
            log.exception("cannot record a failed admin authentication")

    async def _failed(self, remote: str, what: str) -> None:
        now = self.clock()
        closed = {a: s for a, s in self._slots.items() if now - s.opened >= self.window_seconds}
        if closed:
            for address in closed:
                del self._slots[address]
            await self._write_counts(closed)
        address = remote
        if address not in self._slots and len(self._slots) >= self.max_addresses:
            address = OTHERS
        slot = self._slots.get(address)
        if slot is not None:
            slot.count += 1
            self._schedule_flush()
            return
        slot = self._slots[address] = _Slot(opened=now, entry_id=None, count=1, written=1)
        async with self.db.transaction() as conn:
            slot.entry_id = await write_entry(
                conn, Actor(UNKNOWN, remote=address), AUTH_FAILED, what, DENIED, {"count": 1}
            )
        if slot.count > slot.written:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Write the counts that grew since they were last written."""
        try:
            await self._write_counts(self._slots)
        except Exception:
            log.exception("cannot update the count of failed admin authentications")

    async def _write_counts(self, slots: dict[str, _Slot]) -> None:
        dirty = [
            (s, s.count) for s in slots.values() if s.entry_id is not None and s.count > s.written
        ]
        if not dirty:
            return
        async with self.db.transaction() as conn:
            for slot, count in dirty:
                assert slot.entry_id is not None
                await repo.set_details(conn, slot.entry_id, {"count": count})
        for slot, count in dirty:
            slot.written = max(slot.written, count)

    async def close(self) -> None:
        """Write pending counts and stop the timer (call at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        await self.flush()
