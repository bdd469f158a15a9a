"""Per-thing request limits for the Jobs device API (RequestThrottled), as token buckets."""

from __future__ import annotations

from lantern.jobs.clock import Clock

_PRUNE_EVERY = 10_000


class TokenBuckets:
    """``rate`` requests per second per key, with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._calls = 0

    def allow(self, key: str) -> bool:
        now = self._clock.now()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune(now)
        return allowed

    def _prune(self, now: float) -> None:
        # A bucket that has refilled completely carries no information.
        full = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
