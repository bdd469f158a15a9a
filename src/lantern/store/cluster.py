"""Repository of the cluster tables (:mod:`lantern.store.schema.cluster`).

Encryption is not this module's business: it stores and returns sealed values as bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.locks import advisory_key
from lantern.store.schema.cluster import cluster_nodes as _n
from lantern.store.schema.cluster import cluster_secrets as _s

__all__ = [
    "NodeRecord",
    "SealedSecret",
    "delete_node",
    "heartbeat",
    "insert_secrets",
    "list_nodes",
    "lock_secrets",
    "read_secrets",
    "upsert_node",
]

SECRETS_LOCK = advisory_key("cluster-secrets")


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """One encrypted value of the shared platform material."""

    name: str
    kdf: str
    salt: bytes
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node_id: str
    hostname: str
    pid: int
    version: str
    mqtt_address: str
    http_address: str
    started_at: float
    heartbeat_at: float
    connections: int


async def lock_secrets(conn: AsyncConnection) -> None:
    """Hold the shared-material lock until the transaction ends (PostgreSQL; on SQLite the
    transaction's write lock does the same once it writes, and one machine has one data
    directory anyway)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SECRETS_LOCK})


async def read_secrets(conn: AsyncConnection) -> list[SealedSecret]:
    rows = await conn.execute(select(_s.c.name, _s.c.kdf, _s.c.salt, _s.c.nonce, _s.c.ciphertext))
    return [
        SealedSecret(r.name, r.kdf, bytes(r.salt), bytes(r.nonce), bytes(r.ciphertext))
        for r in rows
    ]


async def insert_secrets(conn: AsyncConnection, sealed: Sequence[SealedSecret], now: float) -> None:
    await conn.execute(
        insert(_s),
        [
            {
                "name": s.name,
                "kdf": s.kdf,
                "salt": s.salt,
                "nonce": s.nonce,
                "ciphertext": s.ciphertext,
                "created_at": now,
            }
            for s in sealed
        ],
    )


async def upsert_node(conn: AsyncConnection, node: NodeRecord) -> None:
    """Register ``node`` (replacing the row a previous run of the same node left)."""
    await conn.execute(delete(_n).where(_n.c.node_id == node.node_id))
    await conn.execute(
        insert(_n).values(
            node_id=node.node_id,
            hostname=node.hostname,
            pid=node.pid,
            version=node.version,
            mqtt_address=node.mqtt_address,
            http_address=node.http_address,
            started_at=node.started_at,
            heartbeat_at=node.heartbeat_at,
            connections=node.connections,
        )
    )


async def heartbeat(conn: AsyncConnection, node_id: str, now: float, connections: int) -> bool:
    """Record that ``node_id`` is alive; False when its row is gone (removed meanwhile)."""
    result = await conn.execute(
        update(_n).where(_n.c.node_id == node_id).values(heartbeat_at=now, connections=connections)
    )
    return bool(result.rowcount)


async def delete_node(conn: AsyncConnection, node_id: str) -> None:
    await conn.execute(delete(_n).where(_n.c.node_id == node_id))


async def list_nodes(conn: AsyncConnection) -> list[NodeRecord]:
    rows = await conn.execute(select(_n).order_by(_n.c.node_id))
    return [
        NodeRecord(
            node_id=r.node_id,
            hostname=r.hostname,
            pid=r.pid,
            version=r.version,
            mqtt_address=r.mqtt_address,
            http_address=r.http_address,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            connections=r.connections,
        )
        for r in rows
    ]
