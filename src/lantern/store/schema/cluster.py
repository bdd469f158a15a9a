"""Cluster state kept in the database (Alembic branch ``cluster``).

* ``cluster_secrets``: the platform material every node shares (CA key and certificate, link
  signing key, admin token, push address key), each value encrypted with AES-GCM under a key
  derived from the operator's ``cluster.secret``; ``salt`` and ``kdf`` say how that key is derived
  (nothing here is usable without the secret).
* ``cluster_nodes``: one row per running node (its addresses, start time, last heartbeat and
  connection count); a node deletes its row when it stops cleanly.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, String, Table

from lantern.store.schema.base import metadata

__all__ = ["cluster_nodes", "cluster_secrets"]

cluster_secrets = Table(
    "cluster_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kdf", String(64), nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("mqtt_address", String(255), nullable=False),
    Column("http_address", String(255), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("connections", Integer, nullable=False),
)
