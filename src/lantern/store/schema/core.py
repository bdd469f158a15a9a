"""Tables every domain shares: projects (tenants)."""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table

from lantern.store.schema.base import metadata

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
)
