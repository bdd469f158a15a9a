"""Providers: one :class:`~lantern.push.providers.base.PushProvider` per destination kind."""

from __future__ import annotations

from lantern.push.providers.base import (
    CallerError,
    DeadToken,
    PermanentFailure,
    PreparedMessage,
    ProviderConfigError,
    ProviderFailure,
    PushProvider,
    TemporaryFailure,
)

__all__ = [
    "CallerError",
    "DeadToken",
    "PermanentFailure",
    "PreparedMessage",
    "ProviderConfigError",
    "ProviderFailure",
    "PushProvider",
    "TemporaryFailure",
]
