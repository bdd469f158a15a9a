"""The one interface every provider implements, and the failures a send can end in.

Learned from Sygnal's pushkins: a provider prepares a message for its destination (validating
the caller's payload, so bad input fails before anything is sent), then ``send``s it. A send
either returns (accepted) or raises one :class:`ProviderFailure` subclass that says what the
dispatcher should do: never retry a dead token, retry a temporary failure (after its
``retry_after`` when the provider named one), report caller and configuration errors.

Tree::

    ProviderFailure (PushError)
    ├── DeadToken            the address will never work again (HTTP 410 to the caller)
    ├── TemporaryFailure     retry later; carries retry_after seconds when known
    ├── CallerError          the provider refused the request as malformed (HTTP 400)
    ├── ProviderConfigError  our credentials/topic/sender are wrong (HTTP 503)
    └── PermanentFailure     any other definitive refusal (HTTP 502)
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lantern.push.errors import PushError


class ProviderFailure(PushError):
    """A send did not succeed. ``reason`` is the provider's code (never payload content)."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason if detail is None else f"{reason}: {detail}")
        self.reason = reason


class DeadToken(ProviderFailure):
    """The device token or address is permanently invalid; the caller should drop it."""

    def __init__(self, reason: str, detail: str | None = None, timestamp: float | None = None):
        super().__init__(reason, detail)
        self.timestamp = timestamp  # APNs 410: when the token stopped being valid


class TemporaryFailure(ProviderFailure):
    """Worth retrying; ``retry_after`` (seconds) when the provider asked for a delay."""

    def __init__(
        self, reason: str, detail: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, detail)
        self.retry_after = retry_after


class CallerError(ProviderFailure):
    """The provider says the request itself is wrong (payload shape, header value)."""


class ProviderConfigError(ProviderFailure):
    """The gateway's own configuration is wrong (credentials, topic, sender identity)."""


class PermanentFailure(ProviderFailure):
    """A definitive refusal that fits no other class; not retried."""


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """What a provider will send: the validated address and provider-specific request parts.

    ``body`` and ``headers`` hold the payload; they are never logged or stored.
    """

    address: str
    body: Mapping[str, Any]
    headers: Mapping[str, str]


class PushProvider(abc.ABC):
    """A destination kind (APNs, FCM, email, SMS, Slack).

    ``scheme`` is the canonical ``device_token`` prefix it serves; ``name`` labels metrics.
    ``max_in_flight`` bounds concurrent sends (a semaphore in :meth:`deliver`).
    """

    scheme: ClassVar[str]
    name: ClassVar[str]

    def __init__(self, *, max_in_flight: int = 1000) -> None:
        self._in_flight = asyncio.Semaphore(max_in_flight)

    @abc.abstractmethod
    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        """Validate ``address`` and ``payload`` for this destination and build the request.

        Raises :class:`lantern.push.errors.PushRequestInvalid` naming the field (nothing sent).
        """

    @abc.abstractmethod
    async def send(self, message: PreparedMessage) -> None:
        """Send once. Returns when accepted; raises a :class:`ProviderFailure` otherwise."""

    async def deliver(self, message: PreparedMessage) -> None:
        """:meth:`send` within the in-flight limit."""
        async with self._in_flight:
            await self.send(message)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or load credentials. Raise ProviderConfigError if they cannot."""

    async def check_ready(self) -> str | None:
        """None when the credentials load; otherwise a message saying what is wrong."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""
