"""Per-key rate limits: a token bucket per API key, in memory.

Capacity is one minute's allowance, refilled continuously, so a key limited to N/min can send N
at once and then N per minute on average. Behind several API nodes each node enforces its own
bucket (documented in the README).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """``acquire(key_id, rate_per_minute)`` returns None (allowed) or seconds to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, updated at)

    def acquire(self, key_id: str, rate_per_minute: int | None) -> float | None:
        if rate_per_minute is None:
            return None
        now = self._clock()
        capacity = float(rate_per_minute)
        per_second = rate_per_minute / 60.0
        tokens, updated = self._buckets.get(key_id, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * per_second)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return None
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / per_second
