"""Who a connection is, as the gateway decided at CONNECT (layers: docs/architecture.md).

The MQTT layer carries these objects opaquely (``ClientHandle.identity``); the authorizer and the
device services read them. Each is immutable: a connection's identity never changes while it is
connected (revoking a certificate closes the connection instead).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AnonymousIdentity",
    "ClaimIdentity",
    "Identity",
    "ThingIdentity",
    "UserIdentity",
]


@dataclass(frozen=True, slots=True)
class ClaimIdentity:
    """Connected with a claim certificate: may only provision, with the templates listed."""

    certificate_id: str  # sha256 hex of the DER
    claim_id: str
    project: str
    allowed_templates: frozenset[str]


@dataclass(frozen=True, slots=True)
class ThingIdentity:
    """Connected with an ACTIVE device certificate attached to ``thing_name``."""

    certificate_id: str
    thing_name: str
    project: str


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """Username/password on a plain TCP or WebSocket listener."""

    username: str
    project: str


@dataclass(frozen=True, slots=True)
class AnonymousIdentity:
    """Only when an operator enabled anonymous access on ``listener`` (development)."""

    listener: str


Identity = ClaimIdentity | ThingIdentity | UserIdentity | AnonymousIdentity
