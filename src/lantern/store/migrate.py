"""Run Alembic migrations programmatically (no alembic.ini needed by users).

Every domain has its own branch of revisions (``branch_labels``) so domains evolve
independently; upgrading to ``heads`` applies them all.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lantern.store.locks import MIGRATIONS

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, target: str = "heads") -> None:
    """Upgrade the database behind ``engine`` to ``target`` (all branch heads by default)."""

    def _run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), target)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Nodes of a cluster starting at once on an empty database take turns: the second
            # waits here, then finds the schema at its head and has nothing to do.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATIONS})
        await conn.run_sync(_run)
