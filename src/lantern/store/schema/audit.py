"""The audit log: one row per administrative action (Alembic branch ``audit``).

Rows are appended, never changed (except the count of a rate-limited ``auth.failed`` row) and
never hold a secret: no keys, tokens, passwords, private keys or message contents, only who,
when, what, on which target and how it ended.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table

from lantern.store.schema.base import metadata

__all__ = ["audit_log"]

audit_log = Table(
    "audit_log",
    metadata,
    # Insertion order: newest first is id descending, and ids make stable page cursors.
    # (INTEGER on SQLite: only that type makes the rowid alias that autoincrements.)
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("at", Float, nullable=False),  # UTC, seconds since the epoch
    Column("actor", String(160), nullable=False),  # "admin-token", "cli:alice", ...
    Column("action", String(64), nullable=False),  # "claim.create", "auth.failed", ...
    Column("target", String(512), nullable=False),  # ids or names; "" when none
    Column("outcome", String(16), nullable=False),  # "ok" | "failed" | "denied"
    Column("remote", String(64), nullable=True),  # the HTTP client's address
    Column("details", JSON, nullable=False),  # small non-secret facts, e.g. {"status": ...}
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor", "actor"),
    Index("ix_audit_log_action", "action"),
)
