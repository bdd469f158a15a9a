"""The store migrates every domain's branch on SQLite and PostgreSQL, and again is a no-op."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from lantern.store import Database
from lantern.store.migrate import MIGRATIONS_DIR
from support.postgres import fresh_postgres_database


def _expected_heads() -> set[str]:
    from alembic.script import ScriptDirectory

    from lantern.store.migrate import alembic_config

    cfg = alembic_config()
    assert Path(cfg.get_main_option("script_location") or "") == MIGRATIONS_DIR
    return set(ScriptDirectory.from_config(cfg).get_heads())


async def _check(url: str) -> None:
    db = await Database.open(url)
    try:
        async with db.connect() as conn:
            heads = {
                r[0] for r in (await conn.execute(text("select version_num from alembic_version")))
            }
            projects = (await conn.execute(text("select name from projects"))).scalars().all()
        assert heads == _expected_heads()
        assert "core_0001" in heads or any(h.startswith("core_") for h in heads)
        assert projects == ["default"]
    finally:
        await db.close()
    again = await Database.open(url)  # a second open migrates nothing and keeps the data
    await again.close()


async def test_sqlite_migrates_all_branches(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")


async def test_postgres_migrates_all_branches() -> None:
    async with fresh_postgres_database() as url:
        await _check(url)
