"""The group-commit primitive and the units of work under it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, bindparam

from lantern.store import Database
from lantern.store.group_commit import CommitFailed, GroupCommit
from lantern.store.schema.core import projects
from lantern.store.sqlite.prepared import Prepared
from lantern.store.transactions import each_in_savepoint

_INSERT = sa.insert(projects).values(name=bindparam("name"), created_at=bindparam("at"))
_COUNT = sa.select(sa.func.count()).select_from(projects).where(projects.c.name.like("gc-%"))


def _ids(conn: Connection) -> list[str]:
    rows = conn.execute(sa.select(projects.c.name).where(projects.c.name.like("gc-%")))
    return sorted(r[0] for r in rows)


def _insert(conn: Connection, project_id: str) -> str:
    if project_id.endswith("-bad"):
        raise ValueError(f"refused {project_id}")
    conn.execute(_INSERT, {"name": project_id, "at": 0.0})
    return project_id


async def test_every_caller_answered_after_one_commit_per_batch(db: Database) -> None:
    calls: list[int] = []

    async def commit(batch: list[str]) -> Sequence[str | BaseException]:
        calls.append(len(batch))
        return await db.transactions.write(lambda c: each_in_savepoint(c, batch, _insert))

    writer: GroupCommit[str, str] = GroupCommit(commit, name="test", batch_max=64)
    names = [f"gc-{i}" for i in range(200)]
    results = await asyncio.gather(*(writer.submit(n) for n in names))
    assert results == names
    assert sum(calls) == 200 and max(calls) <= 64
    assert len(calls) < 200  # grouped: far fewer transactions than requests
    assert writer.batches == len(calls) and writer.committed == 200
    assert await db.transactions.read(_ids) == sorted(names)
    await writer.stop()


async def test_one_refused_request_does_not_disturb_its_batch(db: Database) -> None:
    async def commit(batch: list[str]) -> Sequence[str | BaseException]:
        return await db.transactions.write(lambda c: each_in_savepoint(c, batch, _insert))

    writer: GroupCommit[str, str] = GroupCommit(commit, name="test")
    outcomes = await asyncio.gather(
        *(writer.submit(n) for n in ("gc-a", "gc-b-bad", "gc-c")), return_exceptions=True
    )
    assert outcomes[0] == "gc-a" and outcomes[2] == "gc-c"
    assert isinstance(outcomes[1], ValueError)
    assert await db.transactions.read(_ids) == ["gc-a", "gc-c"]
    await writer.stop()


async def test_a_failed_commit_fails_every_caller_and_stores_nothing(db: Database) -> None:
    def insert_then_fail(conn: Connection, batch: list[str]) -> list[str]:
        for name in batch:
            _insert(conn, name)
        conn.execute(_INSERT, {"name": batch[0], "at": 1.0})  # primary key violation
        return batch

    async def commit(batch: list[str]) -> Sequence[str | BaseException]:
        return await db.transactions.write(lambda c: insert_then_fail(c, batch))

    writer: GroupCommit[str, str] = GroupCommit(commit, name="test")
    outcomes = await asyncio.gather(
        *(writer.submit(f"gc-{i}") for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, CommitFailed) for o in outcomes)
    assert all(isinstance(o.__cause__, sa.exc.IntegrityError) for o in outcomes)
    assert await db.transactions.read(_ids) == []  # nothing reported stored, nothing stored
    assert writer.failed_batches >= 1
    await writer.stop()


async def test_full_queue_makes_callers_wait() -> None:
    release = asyncio.Event()
    seen: list[list[int]] = []

    async def commit(batch: list[int]) -> Sequence[int]:
        seen.append(batch)
        await release.wait()
        return batch

    writer: GroupCommit[int, int] = GroupCommit(commit, name="test", batch_max=2, queue_max=4)
    first = asyncio.ensure_future(writer.submit(0))
    await asyncio.sleep(0.01)  # batch [0] is committing
    waiting = [asyncio.ensure_future(writer.submit(i)) for i in range(1, 8)]
    await asyncio.sleep(0.01)
    assert writer.queued == 4  # bounded: the other callers wait for room
    release.set()
    assert await asyncio.gather(first, *waiting) == list(range(8))
    assert all(len(b) <= 2 for b in seen)
    await writer.stop()


async def test_stop_commits_what_is_queued_then_refuses() -> None:
    committed: list[int] = []

    async def commit(batch: list[int]) -> Sequence[int]:
        await asyncio.sleep(0.01)
        committed.extend(batch)
        return batch

    writer: GroupCommit[int, int] = GroupCommit(commit, name="test")
    pending = [asyncio.ensure_future(writer.submit(i)) for i in range(10)]
    await asyncio.sleep(0)
    await writer.stop()
    assert await asyncio.gather(*pending) == list(range(10))
    assert committed == list(range(10))
    with pytest.raises(CommitFailed, match="stopping"):
        await writer.submit(11)


async def test_pipelined_batches_keep_their_order() -> None:
    order: list[list[int]] = []
    running = 0
    most = 0

    async def commit(batch: list[int]) -> Sequence[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        order.append(batch)
        await asyncio.sleep(0.005)
        running -= 1
        return batch

    writer: GroupCommit[int, int] = GroupCommit(commit, name="test", batch_max=3, pipeline=2)
    assert await asyncio.gather(*(writer.submit(i) for i in range(12))) == list(range(12))
    assert [i for b in order for i in b] == list(range(12))
    assert most == 2
    await writer.stop()


async def test_writer_thread_reads_see_commits_and_roll_back(db: Database) -> None:
    await db.transactions.write(lambda c: _insert(c, "gc-r"))

    def sneaky_read(conn: Connection) -> list[str]:
        _insert(conn, "gc-not-kept")  # a read's changes are never kept
        return _ids(conn)

    assert await db.transactions.read(sneaky_read) == ["gc-not-kept", "gc-r"]
    assert await db.transactions.read(_ids) == ["gc-r"]
    with pytest.raises(ValueError, match="refused"):
        await db.transactions.write(lambda c: (_insert(c, "gc-x"), _insert(c, "gc-y-bad")))
    assert await db.transactions.read(_ids) == ["gc-r"]  # the whole unit rolled back


async def test_prepared_statements_give_the_same_rows_on_every_database(db: Database) -> None:
    count = Prepared(_COUNT)
    constant_in = Prepared(
        sa.select(projects.c.name, projects.c.created_at)
        .where(
            projects.c.name.in_(["gc-0", "gc-1", "gc-3"]),
            projects.c.name != bindparam("not_name"),
        )
        .order_by(projects.c.name)
    )
    touch = Prepared(
        sa.update(projects)
        .where(projects.c.name == bindparam("pid"))
        .values(created_at=bindparam("at"))
    )

    def work(conn: Connection) -> tuple[Any, ...]:
        for i in range(4):
            _insert(conn, f"gc-{i}")
        changed = touch.run(conn, {"pid": "gc-3", "at": 3.0})
        missing = touch.run(conn, {"pid": "nope", "at": 9.0})
        return (
            count.first(conn),
            constant_in.rows(conn, {"not_name": "gc-0"}),
            changed,
            missing,
        )

    total, rows, changed, missing = await db.transactions.write(work)
    assert tuple(total) == (4,)
    assert [tuple(r) for r in rows] == [("gc-1", 0.0), ("gc-3", 3.0)]
    assert (changed, missing) == (1, 0)


def test_prepared_refuses_what_its_raw_path_could_not_do_the_same() -> None:
    from lantern.store.schema.jobs import job_executions

    with pytest.raises(ValueError, match="type processing"):
        Prepared(sa.select(job_executions.c.status_details))  # JSON: decoded by SQLAlchemy only
    with pytest.raises(ValueError, match="list parameter"):
        Prepared(
            sa.select(projects.c.name).where(projects.c.name.in_(bindparam("ids", expanding=True)))
        )
