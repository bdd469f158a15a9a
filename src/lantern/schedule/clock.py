"""Clocks the scheduler runs on: the system clock, a manual one (tests, benchmarks) and a scaled
one (end-to-end tests watching a DST change pass in seconds).

A clock gives the current UTC epoch time and waits, either for a duration of *its* time or until
an event is set, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Current time, UTC epoch seconds."""
        ...

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        """Return after ``seconds`` of this clock's time, or as soon as ``wake`` is set."""
        ...


async def _wait_real(seconds: float, wake: asyncio.Event) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=seconds)


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        await _wait_real(seconds, wake)


class ManualClock:
    """A clock that moves only when told (:meth:`set`, :meth:`advance`)."""

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._moved = asyncio.Event()

    def now(self) -> float:
        return self._now

    def set(self, instant: float) -> None:
        self._now = float(instant)
        self._moved.set()

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        deadline = self._now + seconds
        while self._now < deadline and not wake.is_set():
            self._moved.clear()
            waiters = [
                asyncio.ensure_future(self._moved.wait()),
                asyncio.ensure_future(wake.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()


class ScaledClock:
    """Starts at ``start`` and runs ``speed`` times faster than real time.

    ``since`` (a wall-clock epoch) pins ``start`` to that real instant instead of to the
    clock's creation, so processes started at different moments share one scaled time.
    """

    def __init__(self, start: float, speed: float = 1.0, since: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start, self.speed = start, speed
        self._since = since
        self._origin = time.monotonic()

    def now(self) -> float:
        if self._since is not None:
            return self.start + (time.time() - self._since) * self.speed
        return self.start + (time.monotonic() - self._origin) * self.speed

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        await _wait_real(seconds / self.speed, wake)
