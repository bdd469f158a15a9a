"""What the registry holds, as records: plain values, the same whichever database they came from.

This module knows no table and no database: services import the records (and the errors) from
here, or from :mod:`lantern.store.registry`, without depending on how they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lantern.store.db import StoreError

__all__ = [
    "CERTIFICATE_STATUSES",
    "DISABLED_STATUSES",
    "CertificateRecord",
    "ClaimRecord",
    "ClaimSummary",
    "MqttUserRecord",
    "OwnershipTokenRecord",
    "PolicyRecord",
    "RegistryConflict",
    "TemplateRecord",
    "ThingRecord",
]

CERTIFICATE_STATUSES = ("PENDING_ACTIVATION", "ACTIVE", "INACTIVE", "REVOKED")
DISABLED_STATUSES = ("INACTIVE", "REVOKED")
"""Statuses whose certificate may not connect: its live connections are closed."""


class RegistryConflict(StoreError):
    """A write clashed with a row written concurrently (a unique key): nothing of it is kept."""


@dataclass(frozen=True, slots=True)
class ThingRecord:
    name: str
    project: str
    attributes: dict[str, str]
    template_name: str | None
    serial_number: str | None
    manufacturer: str | None
    model: str | None
    device_name: str | None
    created_at: float
    updated_at: float
    # AWS's thing version: 1 when created, one more at each change of its attributes.
    version: int = 1


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    id: str
    pem: str
    kind: str  # 'claim' | 'device'
    status: str
    project: str
    thing_name: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    id: str
    certificate_id: str
    project: str
    description: str
    allowed_templates: tuple[str, ...]
    device_limit: int | None
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class ClaimSummary:
    """A claim and how many things it registered (used ownership tokens)."""

    claim: ClaimRecord
    devices: int


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    name: str
    project: str
    description: str
    enabled: bool
    body: dict[str, Any]
    pre_provisioning_hook_url: str | None
    version: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class OwnershipTokenRecord:
    token_hash: str
    certificate_id: str
    claim_id: str
    created_at: float
    expires_at: float
    used_at: float | None
    thing_name: str | None


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    name: str
    project: str
    document: dict[str, Any]
    project_wide: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class MqttUserRecord:
    username: str
    project: str
    password_hash: str
    policy_name: str | None
    created_at: float
    disabled_at: float | None
