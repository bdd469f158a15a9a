"""The store migrates every domain's branch on SQLite and PostgreSQL, and again is a no-op."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from lantern.store import Database
from lantern.store.migrate import MIGRATIONS_DIR
from support.postgres import fresh_postgres_database


def _all_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from lantern.store.migrate import alembic_config

    cfg = alembic_config()
    assert Path(cfg.get_main_option("script_location") or "") == MIGRATIONS_DIR
    return {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}


def _applied(heads: set[str]) -> set[str]:
    """Every revision reached from the stored heads, through down_revision and depends_on."""
    from alembic.script import ScriptDirectory

    from lantern.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    seen: set[str] = set()
    todo = list(heads)
    while todo:
        rev = script.get_revision(todo.pop())
        if rev is None or rev.revision in seen:
            continue
        seen.add(rev.revision)
        todo.extend(rev._all_down_revisions)
    return seen


async def _check(url: str) -> None:
    db = await Database.open(url)
    try:
        async with db.connect() as conn:
            heads = {
                r[0] for r in (await conn.execute(text("select version_num from alembic_version")))
            }
            projects = (await conn.execute(text("select name from projects"))).scalars().all()
        assert _applied(heads) == _all_revisions()
        assert projects == ["default"]
    finally:
        await db.close()
    again = await Database.open(url)  # a second open migrates nothing and keeps the data
    try:
        async with again.connect() as conn:
            rows = await conn.execute(text("select version_num from alembic_version"))
            assert {r[0] for r in rows} == heads
    finally:
        await again.close()


async def test_sqlite_migrates_all_branches(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")


async def test_postgres_migrates_all_branches() -> None:
    async with fresh_postgres_database() as url:
        await _check(url)
