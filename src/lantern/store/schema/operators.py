"""Operator accounts of the web console and their signed-in sessions (Alembic branch
``operators``).

A password is stored only as its scrypt hash; a session only as the SHA-256 of its random id
(the cookie's value), so a copy of the database signs nobody in.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, String, Table

from lantern.store.schema.base import metadata

__all__ = ["console_sessions", "operators"]

operators = Table(
    "operators",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # "admin" | "operator" | "viewer"
    Column("password_hash", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # hex SHA-256 of the cookie's value
    Column("operator", String(64), nullable=False),  # account name, or "admin-token"
    Column("role", String(16), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("remote", String(64), nullable=True),
    Index("ix_console_sessions_operator", "operator"),
)
