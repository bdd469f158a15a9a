"""The push dispatcher: one request in, one outcome out.

``dispatch`` parses the destination, enforces the key's scope, lets the provider validate the
payload (all before anything is sent), applies the key's rate limit, sends with retries inside
the budget, writes one delivery-log row (never the payload) and returns a
:class:`DeliveryOutcome` that says what ``/push`` answers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from lantern.push.deliverylog import DeliveryLog, DeliveryNotLogged, address_hash
from lantern.push.errors import PushRequestInvalid, ScopeDenied
from lantern.push.keys import ApiKey
from lantern.push.metrics import PushMetrics
from lantern.push.providers.base import (
    CallerError,
    DeadToken,
    PermanentFailure,
    ProviderConfigError,
    ProviderFailure,
    PushProvider,
    TemporaryFailure,
)
from lantern.push.ratelimit import RateLimiter
from lantern.push.retry import RetryPolicy
from lantern.push.scopes import schemes_allowed
from lantern.push.tokens import parse_device_token
from lantern.settings.push import not_configured_message
from lantern.store.push import DeliveryRow

log = logging.getLogger(__name__)

Status = Literal[
    "delivered", "dead_token", "caller_error", "config_error", "failed", "rate_limited"
]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """The result of one push. ``reason`` is the provider's code, never payload content."""

    delivery_id: str
    status: Status
    http_status: int
    reason: str | None
    retry_after: float | None = None
    attempts: int = 0
    # APNs 410: when the device token stopped being valid (epoch seconds).
    token_invalid_since: float | None = None
    # False: the delivery-log row could not be committed (the outcome stands; /push says so).
    logged: bool = True
    # For the caller, when the outcome's default message does not say it (e.g. which setting
    # enables a provider that is not configured). Never payload content.
    message: str | None = None


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(12)


class PushDispatcher:
    """Routes notifications to the provider of their scheme. Providers are keyed by scheme;
    a scheme without a provider is "not configured" (503) rather than unknown (400)."""

    def __init__(
        self,
        providers: Mapping[str, PushProvider],
        deliveries: DeliveryLog,
        *,
        address_key: bytes,
        retry: RetryPolicy | None = None,
        default_rate_per_minute: int | None = None,
        metrics: PushMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.providers = dict(providers)
        self.deliveries = deliveries
        self.retry = retry or RetryPolicy()
        self.default_rate_per_minute = default_rate_per_minute
        self.metrics = metrics or PushMetrics()
        self.limiter = RateLimiter(clock)
        self._address_key = address_key
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    async def dispatch(
        self,
        key: ApiKey,
        device_token: str,
        payload: Mapping[str, Any],
        *,
        push_type: str | None = None,
    ) -> DeliveryOutcome:
        """Send ``payload`` to ``device_token`` on behalf of ``key``.

        Raises :class:`PushRequestInvalid` (400/413, names the field) or :class:`ScopeDenied`
        (403) before anything is sent; every other result is a :class:`DeliveryOutcome`.
        """
        if self._closing:
            return DeliveryOutcome(new_delivery_id(), "failed", 503, "ShuttingDown", 1.0)
        scheme, address = parse_device_token(device_token, push_type)
        if scheme not in schemes_allowed(key.scope):
            self.metrics.rejected.labels("scope_denied").inc()
            raise ScopeDenied(key.id, scheme, key.scope)
        if not isinstance(payload, Mapping):
            raise PushRequestInvalid("payload", "must be a JSON object")
        provider = self.providers.get(scheme)
        if provider is None:
            outcome = DeliveryOutcome(
                new_delivery_id(),
                "config_error",
                503,
                "NotConfigured",
                message=not_configured_message(scheme),
            )
            self.metrics.finished(scheme, "not_configured", 0.0)
            return await self._record(key, scheme, address, outcome, 0.0)
        message = provider.prepare(address, payload)
        rate = key.rate_per_minute or self.default_rate_per_minute
        wait = self.limiter.acquire(key.id, rate)
        if wait is not None:
            self.metrics.rejected.labels("rate_limited").inc()
            return DeliveryOutcome(new_delivery_id(), "rate_limited", 429, None, wait)
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            self._idle.clear()
        gauge = self.metrics.in_flight_of(provider.name)
        gauge.inc()
        try:
            return await self._send(key, scheme, address, provider, message)
        finally:
            gauge.dec()
            if task is not None:
                self._in_flight.discard(task)
                if not self._in_flight:
                    self._idle.set()

    async def _send(
        self, key: ApiKey, scheme: str, address: str, provider: PushProvider, message: Any
    ) -> DeliveryOutcome:
        started = self._clock()
        attempts = 0
        delivery_id = new_delivery_id()
        while True:
            attempts += 1
            try:
                await provider.deliver(message)
            except TemporaryFailure as failure:
                self.metrics.attempt(provider.name, "temporary")
                wait = self.retry.delay(attempts, failure.retry_after)
                if self.retry.fits(self._clock() - started, wait):
                    log.info(
                        "push %s to %s: %s, retry %d in %.2fs",
                        delivery_id,
                        provider.name,
                        failure.reason,
                        attempts,
                        wait,
                    )
                    await self._sleep(wait)
                    continue
                # Out of budget. A provider that asked for a delay gets 503 + Retry-After.
                status_code = 503 if failure.retry_after is not None else 502
                outcome = DeliveryOutcome(
                    delivery_id, "failed", status_code, failure.reason, failure.retry_after
                )
            except ProviderFailure as failure:
                self.metrics.attempt(provider.name, "refused")
                outcome = self._final(delivery_id, failure)
            else:
                self.metrics.attempt(provider.name, "accepted")
                outcome = DeliveryOutcome(delivery_id, "delivered", 200, None)
            break
        outcome = DeliveryOutcome(
            outcome.delivery_id,
            outcome.status,
            outcome.http_status,
            outcome.reason,
            outcome.retry_after,
            attempts,
            outcome.token_invalid_since,
        )
        latency = self._clock() - started
        self.metrics.finished(provider.name, outcome.status, latency)
        if outcome.status != "delivered":
            log.info(
                "push %s to %s by %s: %s (%s) after %d attempt(s)",
                delivery_id,
                provider.name,
                key.id,
                outcome.status,
                outcome.reason,
                attempts,
            )
        return await self._record(key, scheme, address, outcome, latency)

    @staticmethod
    def _final(delivery_id: str, failure: ProviderFailure) -> DeliveryOutcome:
        if isinstance(failure, DeadToken):
            return DeliveryOutcome(
                delivery_id,
                "dead_token",
                410,
                failure.reason,
                token_invalid_since=failure.timestamp,
            )
        if isinstance(failure, CallerError):
            return DeliveryOutcome(delivery_id, "caller_error", 400, failure.reason)
        if isinstance(failure, ProviderConfigError):
            return DeliveryOutcome(delivery_id, "config_error", 503, failure.reason)
        assert isinstance(failure, PermanentFailure | ProviderFailure)
        return DeliveryOutcome(delivery_id, "failed", 502, failure.reason)

    async def _record(
        self, key: ApiKey, scheme: str, address: str, outcome: DeliveryOutcome, latency: float
    ) -> DeliveryOutcome:
        """Log ``outcome``; the same outcome, marked ``logged=False`` if the row could not be
        committed (counted in ``lantern_push_delivery_log_failures_total``)."""
        row = DeliveryRow(
            id=outcome.delivery_id,
            key_id=key.id,
            scheme=scheme,
            address_hash=address_hash(self._address_key, scheme, address),
            status=outcome.status,
            http_status=outcome.http_status,
            reason=outcome.reason,
            attempts=outcome.attempts,
            latency_ms=round(latency * 1000.0, 3),
            created_at=self._wall_clock(),
        )
        try:
            await self.deliveries.record(row)
        except DeliveryNotLogged:
            self.metrics.delivery_log_failures.inc()
            log.warning("push %s: %s, but its delivery-log row was not stored", row.id, row.status)
            return replace(outcome, logged=False)
        return outcome

    async def start(self) -> None:
        for provider in self.providers.values():
            await provider.start()

    async def close(self, timeout: float = 15.0) -> None:
        """Refuse new pushes, wait (up to ``timeout``) for in-flight ones, close providers."""
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("stopping with %d push(es) still in flight", len(self._in_flight))
        await self.deliveries.close()
        for provider in self.providers.values():
            await provider.close()
