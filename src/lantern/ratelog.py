"""Rate-limited INFO lines for events an outsider can provoke at will (refused TLS handshakes,
refused CONNECTs): at most ``per_window`` lines per key (a kind of event and its reason, e.g.
``tls_certificate_verify_failed``) per ``window`` seconds, then one "suppressed K" summary when
the window ends, so a flood of bad clients cannot flood the log.

Each line carries ``reason`` (and whatever ``fields`` are given, e.g. ``peer``) as attributes of
the log record, which the JSON log format prints as fields (:mod:`lantern.runtime.logs`).
Never pass secrets (passwords, tokens) as arguments or fields.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class _Window:
    __slots__ = ("logged", "start", "suppressed", "timer")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.suppressed = 0
        self.timer: asyncio.TimerHandle | None = None


class RateLimitedLog:
    """INFO lines on ``logger``, at most ``per_window`` per reason per ``window`` seconds.

    ``per_window`` 0 logs nothing (the summaries neither). The summary of a window with
    suppressed lines is logged when the window ends (a timer on the running loop, if any) or,
    without a loop, with the next line of that reason.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_window: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_window < 0 or window <= 0:
            raise ValueError("per_window >= 0 and window > 0 are required")
        self.logger = logger
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def info(self, key: str, msg: str, *args: object, **fields: object) -> bool:
        """Log ``msg % args`` at INFO unless ``key`` used up its window; True if logged.
        ``fields`` become attributes of the record (``reason`` defaults to ``key``)."""
        if not self.per_window or not self.logger.isEnabledFor(logging.INFO):
            return False
        now = self._clock()
        win = self._windows.get(key)
        if win is None or now - win.start >= self.window:
            if win is not None:
                self._summarise(key, win)
            if len(self._windows) >= 1024 and key not in self._windows:
                self._windows.clear()  # keys are a small set; never grow without bound
            win = self._windows[key] = _Window(now)
        if win.logged < self.per_window:
            win.logged += 1
            self.logger.info(msg, *args, extra={"reason": key, **fields})
            return True
        win.suppressed += 1
        if win.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            win.timer = loop.call_later(win.start + self.window - now, self._end, key, win)
        return False

    def _end(self, key: str, win: _Window) -> None:
        win.timer = None
        if self._windows.get(key) is win:
            del self._windows[key]
        self._summarise(key, win)

    def _summarise(self, key: str, win: _Window) -> None:
        if win.timer is not None:
            win.timer.cancel()
            win.timer = None
        if win.suppressed:
            self.logger.info(
                "%s: %d more line(s) suppressed in the last %g s (at most %d per window)",
                key,
                win.suppressed,
                self.window,
                self.per_window,
                extra={"key": key, "suppressed": win.suppressed},
            )
            win.suppressed = 0
