"""The node registry: each node's row in ``cluster_nodes`` (addresses, start, heartbeat,
connections), kept fresh every ``HEARTBEAT_SECONDS`` and removed when the node stops cleanly.
A node whose heartbeat is older than ``STALE_SECONDS`` is shown as down (it died or lost the
database)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import lantern
from lantern.errors import ConfigError
from lantern.store import Database
from lantern.store import cluster as repo
from lantern.store.cluster import NodeRecord

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "NodeRegistration", "NodeStatus", "list_status"]

log = logging.getLogger("lantern.cluster")
# A heartbeat is one UPDATE per node every 2 s (nothing for PostgreSQL); three missed ones make
# a node down, which is also when a survivor publishes its wills (lantern.cluster.orphans).
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS


class NodeRegistration:
    """This node's row: written at start, refreshed by :meth:`run` until stopped."""

    def __init__(
        self,
        db: Database,
        node_id: str,
        *,
        mqtt_address: str,
        http_address: str,
        connections: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self.node_id = node_id
        self._connections = connections
        self._clock = clock
        now = clock()
        self._record = NodeRecord(
            node_id=node_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            version=lantern.__version__,
            mqtt_address=mqtt_address,
            http_address=http_address,
            started_at=now,
            heartbeat_at=now,
            connections=0,
        )
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """Add this node's row; refuse (:class:`ConfigError`) when another live node already
        uses this node id (a copied data directory, or the same ``cluster.node_id`` twice)."""
        async with self._db.transaction() as conn:
            for other in await repo.list_nodes(conn):
                if other.node_id != self.node_id:
                    continue
                # The same machine is this node restarting (after a crash its row is still fresh).
                elsewhere = other.hostname != self._record.hostname
                if elsewhere and self._clock() - other.heartbeat_at <= STALE_SECONDS:
                    raise ConfigError(
                        f"node id {self.node_id!r} is in use by a running node ({other.hostname} "
                        f"pid {other.pid}, heartbeat {self._clock() - other.heartbeat_at:.0f} s "
                        "ago): give each node its own cluster.node_id "
                        "(LANTERN_CLUSTER__NODE_ID), or delete node-id in this node's data "
                        "directory if it was copied from another node"
                    )
            await repo.upsert_node(conn, self._record)

    async def beat(self) -> None:
        async with self._db.transaction() as conn:
            alive = await repo.heartbeat(conn, self.node_id, self._clock(), self._connections())
            if not alive:  # removed meanwhile (the database was restored, or by hand)
                await repo.upsert_node(conn, self._record)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.beat()
            except Exception as exc:
                log.warning("node heartbeat failed (%s)", type(exc).__name__)

    async def start(self) -> None:
        await self.register()
        self._task = asyncio.create_task(self._run(), name="cluster-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with self._db.transaction() as conn:
                await repo.delete_node(conn, self.node_id)
        except Exception as exc:
            log.warning("could not remove this node from the registry (%s)", type(exc).__name__)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What ``lantern cluster status`` shows of a node."""

    node_id: str
    state: str  # "up" or "down" (no heartbeat for STALE_SECONDS)
    hostname: str
    pid: int
    version: str
    mqtt_address: str
    http_address: str
    started_at: float
    uptime_seconds: float
    heartbeat_at: float
    heartbeat_age_seconds: float
    connections: int

    def as_json(self) -> dict[str, object]:
        return asdict(self)


async def list_status(db: Database, now: float | None = None) -> list[NodeStatus]:
    """Every registered node, with its state as of ``now``."""
    now = time.time() if now is None else now
    async with db.connect() as conn:
        nodes = await repo.list_nodes(conn)
    return [
        NodeStatus(
            node_id=n.node_id,
            state="up" if now - n.heartbeat_at <= STALE_SECONDS else "down",
            hostname=n.hostname,
            pid=n.pid,
            version=n.version,
            mqtt_address=n.mqtt_address,
            http_address=n.http_address,
            started_at=n.started_at,
            uptime_seconds=round(max(0.0, now - n.started_at), 1),
            heartbeat_at=n.heartbeat_at,
            heartbeat_age_seconds=round(max(0.0, now - n.heartbeat_at), 1),
            connections=n.connections,
        )
        for n in nodes
    ]
