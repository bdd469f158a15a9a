"""Retry policy: exponential backoff with jitter inside a bounded time budget.

Sygnal retries inside the inbound request without a bound; here every notification has a budget
(default 10 s) that covers all attempts and waits, so a caller never waits much longer than that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``delay(n)`` for the wait after the n-th failed attempt (n >= 1)."""

    budget: float = 10.0
    first_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 4.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Backoff after ``attempt`` failures: "equal jitter" (half fixed, half random) so the
        wait grows yet concurrent retries spread out; never shorter than ``retry_after``."""
        base = min(self.max_delay, self.first_delay * self.multiplier ** (attempt - 1))
        wait = base / 2 + self.rng.uniform(0, base / 2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def fits(self, elapsed: float, wait: float) -> bool:
        """Whether waiting ``wait`` more seconds keeps the attempt inside the budget."""
        return elapsed + wait < self.budget
