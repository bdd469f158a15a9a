"""Prometheus metrics of the app gateway, on a registry owned by the running app.

A per-app :class:`CollectorRegistry` (not the process-global one) keeps several gateways in one
process, as tests create them, from colliding.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


class PushMetrics:
    """Counters per provider and outcome, attempt results, latency histograms, in-flight."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.notifications = Counter(
            "lantern_push_notifications",
            "Push requests by provider and final outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "lantern_push_attempts",
            "Sends to providers (retries included) by result.",
            ["provider", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lantern_push_latency_seconds",
            "Time from accepting a push request to its final outcome, retries included.",
            ["provider", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "lantern_push_in_flight",
            "Push requests being processed.",
            ["provider"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "lantern_push_rejected",
            "Push requests refused before any send (auth, scope, validation, rate limit).",
            ["code"],
            registry=self.registry,
        )
        self.responses = Counter(
            "lantern_push_responses",
            "POST /push answers by HTTP status (every outcome: 200, 400, 401, 403, 413, 429, "
            "502, 503, ...).",
            ["status"],
            registry=self.registry,
        )
        self.delivery_log_failures = Counter(
            "lantern_push_delivery_log_failures",
            "Pushes whose delivery-log row could not be stored (the push itself went out).",
            registry=self.registry,
        )
        # Label children resolved once: ``labels()`` takes a lock and builds a key every call,
        # a visible share of a push's CPU.
        self._attempts: dict[tuple[str, str], Counter] = {}
        self._finished: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._in_flight: dict[str, Gauge] = {}
        self._responses: dict[int, Counter] = {}

    def attempt(self, provider: str, result: str) -> None:
        """Count one send to ``provider`` ending in ``result``."""
        child = self._attempts.get((provider, result))
        if child is None:
            child = self._attempts[provider, result] = self.attempts.labels(provider, result)
        child.inc()

    def finished(self, provider: str, outcome: str, latency: float) -> None:
        """Count one notification's final ``outcome`` and observe its ``latency``."""
        children = self._finished.get((provider, outcome))
        if children is None:
            children = self._finished[provider, outcome] = (
                self.notifications.labels(provider, outcome),
                self.latency.labels(provider, outcome),
            )
        children[0].inc()
        children[1].observe(latency)

    def answered(self, status: int) -> None:
        """Count one ``/push`` answer with HTTP ``status``."""
        child = self._responses.get(status)
        if child is None:
            child = self._responses[status] = self.responses.labels(str(status))
        child.inc()

    def in_flight_of(self, provider: str) -> Gauge:
        """The in-flight gauge of ``provider``."""
        child = self._in_flight.get(provider)
        if child is None:
            child = self._in_flight[provider] = self.in_flight.labels(provider)
        return child

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
