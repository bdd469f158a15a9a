"""ThingNames: a topic's or filter's first level against the registered things; the full load,
and the poll that finds things other processes created (with its slack for late commits)."""

from __future__ import annotations

from lantern.gateway.things import ThingNames, first_level
from lantern.store import Database
from lantern.store import registry as reg


async def _thing(db: Database, name: str, created_at: float) -> None:
    async with db.transaction() as conn:
        await reg.insert_thing(
            conn, reg.ThingRecord(name, "default", {}, *[None] * 5, created_at, created_at)
        )


def test_first_level_of_names_and_filters() -> None:
    assert first_level("dev1/data/x") == "dev1"
    assert first_level("dev1") == "dev1"
    assert first_level("$share/group/dev1/#") == "dev1"
    assert first_level("+/data") == "+"
    assert first_level("/dev1") == ""


async def test_load_then_poll_with_slack(sqlite_db: Database) -> None:
    now = [1000.0]
    await _thing(sqlite_db, "old", 10.0)
    names = ThingNames(sqlite_db, slack=60.0, clock=lambda: now[0])
    assert not names.covers("old/x")  # nothing is known before the load
    await names.ensure_loaded()
    assert names.covers("old/x") and names.covers("$share/g/old/#")
    assert not names.covers("other/old") and not names.covers("#")
    # Created by another process, stamped a little before the load (a late commit): found.
    await _thing(sqlite_db, "late", 990.0)
    await _thing(sqlite_db, "new", 1001.0)
    now[0] = 1002.0
    assert await names.poll_once() == 2
    assert "late" in names and "new" in names
    assert await names.poll_once() == 0
