"""Whether this process is a cluster node, and the settings a node cannot run without.

A node is clustered when ``cluster.nats_url`` is set. Nodes on several machines share one
PostgreSQL database, S3 for files and a ``cluster.secret``. The workers of ``lantern serve
--workers N`` on one machine are a cluster too, on an embedded NATS server; they share the
data directory (SQLite file, local files, keys), so none of those three is required of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lantern.errors import ConfigError
from lantern.settings import Settings

__all__ = ["ClusterRole", "WorkerRole", "check_cluster_settings"]


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """This process is worker ``index`` of ``lantern serve --workers``; ``one_machine`` when
    the supervisor runs the embedded NATS server (no cluster.nats_url was configured)."""

    index: int
    one_machine: bool


@dataclass(frozen=True, slots=True)
class ClusterRole:
    """How this process takes part: ``node_id`` in the registry; ``one_machine`` for the
    workers of ``--workers`` on an embedded NATS server; ``worker`` their index (or None)."""

    node_id: str
    nats_url: str
    one_machine: bool = False
    worker: int | None = None


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres"))


def check_cluster_settings(settings: Settings, *, one_machine: bool = False) -> None:
    """Refuse (:class:`ConfigError`, naming the setting and the fix) a clustered configuration
    that cannot work. Does nothing for a node that is not clustered."""
    if settings.cluster.nats_url is None or one_machine:
        return
    if not is_postgres(settings.effective_database_url):
        raise ConfigError(
            "cluster.nats_url is set, so this node joins a cluster, but database_url is not a "
            "PostgreSQL URL: every node of a cluster shares one PostgreSQL database. Set "
            "LANTERN_DATABASE_URL=postgresql+asyncpg://USER@HOST/DB (or run one machine with "
            "`lantern serve --workers N` and no cluster.nats_url)"
        )
    if settings.cluster.secret is None:
        raise ConfigError(
            "cluster.secret is not set: every node of a cluster needs the same passphrase (16 "
            "characters or more) in LANTERN_CLUSTER__SECRET (or [cluster] secret). It encrypts "
            "the shared CA and keys kept in PostgreSQL; see docs/cluster.md"
        )
    if settings.ingest.storage_backend == "local":
        raise ConfigError(
            'ingest.storage_backend is "local", but the nodes of a cluster must serve every '
            'uploaded file and firmware image: configure S3 (ingest.storage_backend = "s3" and '
            "ingest.s3_bucket, or LANTERN_INGEST__STORAGE_BACKEND=s3 and "
            "LANTERN_INGEST__S3_BUCKET); see docs/cluster.md"
        )
