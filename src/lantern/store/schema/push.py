"""Tables of the app gateway: API keys and the delivery log (never payload contents)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from lantern.store.schema.base import metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scope", String(16), nullable=False),
    # "sha256:<hex>" of the secret; the secret itself is never stored.
    Column("secret_hash", String(128), nullable=False, unique=True),
    Column("rate_per_minute", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoke_note", Text, nullable=True),
    Column("replaced_by", String(32), nullable=True),
    Column("source", String(16), nullable=False),
)

push_deliveries = Table(
    "push_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(32), nullable=True),
    Column("scheme", String(16), nullable=False),
    # Keyed hash of the device token / address: lets an operator match a complaint without
    # the log holding the address itself.
    Column("address_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("reason", String(128), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_push_deliveries_created_at", "created_at"),
    Index("ix_push_deliveries_key_id", "key_id"),
)
