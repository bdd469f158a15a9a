"""What a domain plugs into the running server: routes, a start/stop, readiness checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from prometheus_client import CollectorRegistry

from lantern.pki import CertificateAuthority
from lantern.settings import Settings
from lantern.store import Database

if TYPE_CHECKING:
    from lantern.api.app import ReadinessCheck


@dataclass
class Platform:
    """What every component may use: settings, the data directory, the CA and the database.

    ``extras`` lets components hand objects to each other by name (e.g. the MQTT server, the
    push dispatcher) without this module importing their types. ``metrics`` is the registry
    ``/metrics`` serves; components register their collectors on it.
    """

    settings: Settings
    data_dir: Path
    ca: CertificateAuthority
    db: Database
    http_base_url: str
    extras: dict[str, object] = field(default_factory=dict)
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)


class Component:
    """A domain's part of the running server. Subclasses override what they need."""

    name = "component"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def routers(self) -> Sequence[APIRouter]:
        return ()

    def readiness_checks(self) -> Sequence[ReadinessCheck]:
        return ()

    async def start(self) -> None:
        """Start background work. Called in list order after the HTTP app is built."""

    async def stop(self) -> None:
        """Stop background work, draining what is in flight. Called in reverse order."""

    def describe(self) -> list[str]:
        """Lines for the startup banner (endpoints, where things are)."""
        return []
