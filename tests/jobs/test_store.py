"""The jobs repository behaves the same on SQLite and PostgreSQL: notification state (created by
a lock, updated by a save, flagged by mark_dirty), the lock that makes two evaluations of one
thing take turns, and records read the same through every path (prepared statements on a SQLite
file's writer thread, SQLAlchemy on the async engine)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Connection

from jobs.kit import Kit
from lantern.store import Database, StoreError
from lantern.store.jobs import ExecStatus, JobsUnit, NotifyState
from lantern.store.jobs import notify_state as states

FRESH = NotifyState("", None, False)


def _state(conn: Connection, thing: str) -> NotifyState | None:
    found = states.lock_notify_states(conn, [thing, "dev1"])  # the many-things path
    return found.get(thing)


async def test_lock_creates_save_updates_mark_flags(kit: Kit) -> None:
    db = kit.db
    await kit.add_things("dev1", "dev2", "dev3")
    write = db.transactions.write

    # A lock creates the missing row, and it is kept.
    assert await write(lambda c: states.lock_notify_state(c, "dev1")) == FRESH
    assert await write(lambda c: states.lock_notify_states(c, ["dev2", "dev3"])) == {
        "dev2": FRESH,
        "dev3": FRESH,
    }
    # A save updates a locked row; a thing without a row is not saved, and says so.
    assert await write(lambda c: states.save_notify_state(c, "dev1", "j1,j2", "j1")) is True
    await write(lambda c: states.save_notify_states(c, {"dev2": ("j2", "j2"), "dev3": ("", None)}))
    assert await write(lambda c: states.save_notify_state(c, "ghost", "j1", "j1")) is False
    assert await write(lambda c: states.lock_notify_state(c, "dev1")) == NotifyState(
        "j1,j2", "j1", False
    )
    assert await write(lambda c: states.lock_notify_state(c, "dev2")) == NotifyState(
        "j2", "j2", False
    )

    # mark_dirty flags existing rows (keeping what they say) and creates missing ones.
    await kit.add_things("dev4")
    await write(lambda c: states.mark_dirty(c, ["dev1", "dev4"]))
    assert await write(lambda c: states.dirty_things(c, 10)) == ["dev1", "dev4"]
    assert await write(lambda c: states.lock_notify_state(c, "dev1")) == NotifyState(
        "j1,j2", "j1", True
    )
    assert await write(lambda c: states.lock_notify_state(c, "dev4")) == NotifyState("", None, True)
    await write(lambda c: states.clear_dirty(c, ["dev1"]))
    assert await write(lambda c: states.dirty_things(c, 10)) == ["dev4"]
    await write(lambda c: states.clear_dirty(c, ["dev2", "dev4"]))
    assert await write(lambda c: states.dirty_things(c, 10)) == []
    # A save clears the flag too.
    await write(lambda c: states.mark_dirty(c, ["dev3"]))
    await write(lambda c: states.save_notify_state(c, "dev3", "j3", "j3"))
    assert await write(lambda c: _state(c, "dev3")) == NotifyState("j3", "j3", False)
    # No state for a thing that does not exist, on either path.
    for lock in (
        lambda c: states.lock_notify_state(c, "ghost"),
        lambda c: states.lock_notify_states(c, ["dev1", "ghost"]),
        lambda c: states.mark_dirty(c, ["ghost"]),
    ):
        with pytest.raises(StoreError, match="ghost"):
            await write(lock)


async def test_a_locked_state_makes_the_next_evaluation_wait_and_see_the_save(
    kit: Kit,
) -> None:
    """Two servers on one database: the second lock waits for the first transaction and reads
    what it saved (PostgreSQL: the row lock; SQLite: the write lock)."""
    await kit.add_things("dev1")
    await kit.db.transactions.write(lambda c: states.lock_notify_state(c, "dev1"))
    locked, go = threading.Event(), threading.Event()

    def first(conn: Connection) -> None:
        states.lock_notify_state(conn, "dev1")
        locked.set()
        go.wait(10)
        states.save_notify_state(conn, "dev1", "j9", "j9")

    other = _OtherServer(kit.db, first)
    other.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        second = asyncio.create_task(
            kit.db.transactions.write(lambda c: states.lock_notify_state(c, "dev1"))
        )
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for the first transaction
        go.set()
        assert await asyncio.wait_for(second, 10) == NotifyState("j9", "j9", False)
    finally:
        go.set()
        other.join()
    assert other.error is None, other.error


async def test_records_are_the_same_through_every_path(kit: Kit) -> None:
    await kit.add_things("dev1")
    job = await kit.deploy("dev1", in_progress_timeout_minutes=5)
    details = {"step": "download", "percent": "50", "note": 'quote " and é'}
    r = await kit.call(
        "dev1",
        f"{job}/update",
        {"status": "IN_PROGRESS", "statusDetails": details, "stepTimeoutInMinutes": 3},
    )
    assert r.accepted, r.body
    through_writer = await kit.db.transactions.read(
        lambda c: JobsUnit(c).get_execution(job, "dev1")
    )
    pending = await kit.db.transactions.read(lambda c: JobsUnit(c).pending_for_things(["dev1"]))
    through_engine = (await kit.queries.deployment(job)).executions[0]
    assert through_writer == through_engine == pending["dev1"][0]
    assert through_engine.status_details == details
    assert through_engine.document["deploymentId"] == job
    assert through_engine.in_progress_deadline == kit.clock.now() + 300
    assert through_engine.step_deadline == kit.clock.now() + 180
    listed = (await kit.queries.list_deployments())[0]
    assert listed.job == (await kit.queries.deployment(job, with_executions=False)).job
    assert listed.job.abort_criteria is None and listed.job.force_canceled is False
    assert listed.counts == {ExecStatus.IN_PROGRESS: 1}


class _OtherServer(threading.Thread):
    """``fn`` as a unit of work of a second Database on the same database, on an event loop of
    its own (another server process, as far as the database can tell)."""

    def __init__(self, db: Database, fn: Any) -> None:
        super().__init__(daemon=True)
        self.url = db.engine.url.render_as_string(hide_password=False)
        self.fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc

    async def _main(self) -> None:
        other = await Database.open(self.url, migrate=False)
        try:
            await other.transactions.write(self.fn)
        finally:
            await other.close()
