"""What the console is built with: the services it calls and the live figures it shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from lantern.audit.auth_failures import AuthFailures
from lantern.jobs.catalog import FirmwareCatalog
from lantern.jobs.deployments import DeploymentService
from lantern.jobs.queries import JobsQueries
from lantern.operators import SessionStore
from lantern.pki import CertificateAuthority
from lantern.push.keys import KeyService
from lantern.store import Database
from lantern.store.objects import ObjectStore

__all__ = ["ConsoleDeps", "LiveStats"]


class LiveStats(Protocol):
    """Figures only the running server knows (the MQTT server's connections)."""

    def connected_things(self) -> set[str]:
        """Names of the things connected now."""
        ...

    def connections(self) -> int:
        """Open MQTT connections (devices, claims and users)."""
        ...

    def messages_received(self) -> int | None:
        """PUBLISH packets received since start, when the server counts them."""
        ...

    def last_seen(self) -> dict[str, float]:
        """When each thing was last seen connected since the server started (sampled)."""
        ...


@dataclass
class ConsoleDeps:
    """Everything the console's pages use (built by the runtime's console component)."""

    db: Database
    ca: CertificateAuthority
    objects: ObjectStore
    sessions: SessionStore
    admin_token: Callable[[], str]
    live: LiveStats
    catalog: FirmwareCatalog
    deployments: DeploymentService
    jobs: JobsQueries
    jobs_changed: Callable[[], Awaitable[object]]
    api_keys: KeyService | None = None
    auth_failures: AuthFailures | None = None
    https_public_url: bool = False  # [http] public_url is https: cookies are Secure
