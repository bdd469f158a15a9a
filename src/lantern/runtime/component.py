"""What a domain plugs into the running server: routes, a start/stop, readiness checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from prometheus_client import CollectorRegistry

from lantern.audit.auth_failures import AuthFailures
from lantern.cluster.mode import ClusterRole
from lantern.pki import CertificateAuthority
from lantern.runtime.datadir import DataDir
from lantern.settings import Settings
from lantern.store import Database
from lantern.store.objects import ObjectStore

if TYPE_CHECKING:
    from lantern.api.app import ReadinessCheck, UnmatchedHandler


@dataclass
class Platform:
    """What every component may use: settings, the data directory, the CA, the database, the
    object store, the recorder of failed admin authentications (one per process, so its rate
    limit holds across every admin route) and the metrics registry ``/metrics`` serves.

    What one component needs from another (the gateway's router, the push dispatcher) is a
    typed constructor argument, wired in :func:`lantern.runtime.components.build_components`.
    ``http_base_url`` is known once the HTTP server is bound, before any component starts.
    ``cluster`` is set on a node of a cluster (``cluster.nats_url``, or a ``--workers`` worker).
    """

    settings: Settings
    data_dir: Path
    ca: CertificateAuthority
    db: Database
    objects: ObjectStore
    auth_failures: AuthFailures
    http_base_url: str = ""
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: This node's place in a cluster (None: a lone server); see docs/cluster.md.
    cluster: ClusterRole | None = None
    #: Listeners share their ports with sibling worker processes (``serve --workers``).
    reuse_port: bool = False

    def admin_token(self) -> str:
        """The admin token (read from the data directory on each call: rotating it needs no
        restart)."""
        return DataDir(self.data_dir).admin_token()


class Component:
    """A domain's part of the running server. Subclasses override what they need."""

    name = "component"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def routers(self) -> Sequence[APIRouter]:
        return ()

    def readiness_checks(self) -> Sequence[ReadinessCheck]:
        return ()

    def unmatched_handlers(self) -> Sequence[UnmatchedHandler]:
        """Asked about HTTP requests no route answers (see :func:`lantern.api.app.create_app`)."""
        return ()

    async def bind(self) -> None:
        """Claim network addresses (bound, not yet accepting), before any component starts, so
        a port in use stops ``serve`` at once. A component that binds is stopped even if its
        :meth:`start` never ran."""

    async def start(self) -> None:
        """Start background work. Called in list order once the HTTP server is bound."""

    async def stop(self) -> None:
        """Stop background work, draining what is in flight. Called in reverse order."""

    def describe(self) -> list[str]:
        """Lines for the startup banner (endpoints, where things are)."""
        return []
