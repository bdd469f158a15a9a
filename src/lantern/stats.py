"""A plain-integer histogram for counters kept by the code that counts and read at scrape time.

Services and the MQTT server keep their counts as plain integers (no metrics library on their
paths, no registry to pass around); the runtime's collectors (:mod:`lantern.runtime.metrics`)
export them on ``/metrics``.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["LATENCY_BUCKETS", "Buckets"]

#: Seconds, for request latencies (provisioning flows, scheduler lateness, ...).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Buckets:
    """A cumulative-on-read histogram: ``counts[i]`` observations <= ``bounds[i]`` (and above
    the previous bound), the last slot for those above every bound."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, ``+Inf`` last, as Prometheus histograms expose them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out
