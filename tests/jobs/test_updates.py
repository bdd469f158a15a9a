"""UpdateJobExecution by group commit: many devices per transaction, each answered after its commit,
with the same per-update checks and notifications as one at a time (SQLite and PostgreSQL: the
``kit`` fixture runs every test on both)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from jobs.kit import Kit, Response
from lantern.store import Database
from lantern.store.jobs import JobsUnit
from lantern.store.schema.jobs import job_executions


def update(kit: Kit, thing: str, job: str, body: dict[str, Any]) -> Any:
    return kit.call(thing, f"{job}/update", body)


async def stored(db: Database, job: str) -> dict[str, tuple[str, int]]:
    """``{thing: (status, version)}`` read on a connection of its own (committed data only)."""
    async with db.connect() as conn:
        rows = await conn.execute(
            select(
                job_executions.c.thing_name,
                job_executions.c.status,
                job_executions.c.version_number,
            ).where(job_executions.c.job_id == job)
        )
        return {r[0]: (r[1], int(r[2])) for r in rows}


async def test_concurrent_devices_share_transactions_and_each_reply_is_committed(
    kit: Kit,
) -> None:
    names = [f"dev{i:02d}" for i in range(40)]
    await kit.add_things(*names)
    job = await kit.deploy(*names)
    kit.recorder.take()

    async def device(name: str) -> list[Response]:
        replies = []
        for i, status in enumerate(["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]):
            r = await update(
                kit,
                name,
                job,
                {
                    "status": status,
                    "statusDetails": {"step": str(i)},
                    "expectedVersion": i + 1,
                    "includeJobExecutionState": True,
                    "clientToken": f"{name}-{i}",
                },
            )
            assert r.accepted, r.body
            # Answered only after the commit: another connection already sees the change.
            assert (await stored(kit.db, job))[name] == (status, i + 2)
            replies.append(r)
        return replies

    results = await asyncio.gather(*(device(n) for n in names))
    assert kit.api.updates.batches < 3 * len(names)  # updates did share transactions
    for name, replies in zip(names, results, strict=True):
        assert [r.body["clientToken"] for r in replies] == [f"{name}-{i}" for i in range(3)]
        assert [r.body["executionState"]["versionNumber"] for r in replies] == [2, 3, 4]
        assert replies[-1].body["executionState"] == {
            "status": "SUCCEEDED",
            "statusDetails": {"step": "2"},
            "versionNumber": 4,
        }
        # QUEUED -> IN_PROGRESS of the head and IN_PROGRESS -> IN_PROGRESS notify nothing; the
        # terminal update empties the pending list: notify and notify-next, to that thing only.
        assert replies[0].notifications == [] and replies[1].notifications == []
        assert [t for t, _ in replies[2].notifications] == [
            f"$aws/things/{name}/jobs/notify",
            f"$aws/things/{name}/jobs/notify-next",
        ]
    assert set((await stored(kit.db, job)).values()) == {("SUCCEEDED", 4)}


async def test_rejected_updates_in_a_batch_leave_the_others_applied(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2", "dev3")
    job = await kit.deploy("dev1", "dev2", "dev3")
    results = await asyncio.gather(
        update(kit, "dev1", job, {"status": "IN_PROGRESS", "expectedVersion": 1}),
        update(kit, "dev2", job, {"status": "IN_PROGRESS", "expectedVersion": 5}),
        update(kit, "dev3", job, {"status": "IN_PROGRESS", "executionNumber": 9}),
        update(kit, "dev1", job, {"status": "IN_PROGRESS", "expectedVersion": 1}),
        update(kit, "dev3", job, {"status": "FAILED"}),
    )
    assert [r.accepted for r in results] == [True, False, False, False, True]
    assert results[1].body["code"] == "VersionMismatch"
    assert results[1].body["executionState"]["versionNumber"] == 1
    assert results[2].body["code"] == "ResourceNotFound"
    # Applied in arrival order: the second dev1 update saw the first one's version.
    assert results[3].body["code"] == "VersionMismatch"
    assert results[3].body["executionState"] == {
        "status": "IN_PROGRESS",
        "statusDetails": {},
        "versionNumber": 2,
    }
    assert await stored(kit.db, job) == {
        "dev1": ("IN_PROGRESS", 2),
        "dev2": ("QUEUED", 1),
        "dev3": ("FAILED", 2),
    }


async def test_updates_after_close_are_refused_and_change_nothing(kit: Kit) -> None:
    await kit.add_things("dev1")
    job = await kit.deploy("dev1")
    await kit.api.close()
    r = await update(kit, "dev1", job, {"status": "IN_PROGRESS", "clientToken": "t"})
    assert r.body["code"] == "InternalError" and r.body["clientToken"] == "t"
    assert "shutting down" in r.body["message"]
    assert await stored(kit.db, job) == {"dev1": ("QUEUED", 1)}


async def test_race_in_one_batch_and_notifications(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    job = await kit.deploy("dev1", "dev2")
    race = await asyncio.gather(
        *[
            update(
                kit,
                "dev1",
                job,
                {"status": "IN_PROGRESS", "expectedVersion": 1, "clientToken": f"w{i}"},
            )
            for i in range(6)
        ],
        update(kit, "dev2", job, {"status": "REJECTED", "statusDetails": {"why": "model"}}),
    )
    winners = [r for r in race[:6] if r.accepted]
    assert len(winners) == 1
    assert {r.body["code"] for r in race[:6] if not r.accepted} == {"VersionMismatch"}
    assert race[6].accepted
    assert [t.rsplit("/", 1)[1] for t, _ in race[6].notifications] == ["notify", "notify-next"]
    done = await update(kit, "dev1", job, {"status": "SUCCEEDED", "expectedVersion": 2})
    assert done.accepted
    assert await stored(kit.db, job) == {"dev1": ("SUCCEEDED", 3), "dev2": ("REJECTED", 2)}


async def test_two_servers_racing_on_one_execution_exactly_one_wins(
    kit: Kit, tmp_path: Path
) -> None:
    """Two servers (two Database objects, two update writers) on one database: of updates with
    the same expectedVersion exactly one wins, and its notifications are sent once."""
    await kit.add_things("dev1")
    job = await kit.deploy("dev1")
    other_db = await Database.open(
        kit.db.engine.url.render_as_string(hide_password=False), migrate=False
    )
    other = Kit(other_db, tmp_path)
    try:

        def body(status: str, version: int, i: int) -> dict[str, Any]:
            return {
                "status": status,
                "expectedVersion": version,
                "statusDetails": {"writer": str(i)},
                "clientToken": f"w{i}",
            }

        for status, version in (("IN_PROGRESS", 1), ("SUCCEEDED", 2)):
            results = await asyncio.gather(
                *[
                    update(kit if i % 2 else other, "dev1", job, body(status, version, i))
                    for i in range(10)
                ]
            )
            winners = [r for r in results if r.accepted]
            assert len(winners) == 1, [r.body for r in results]
            losers = [r for r in results if not r.accepted]
            assert {r.body["code"] for r in losers} == {"VersionMismatch"}
            assert {r.body["executionState"]["versionNumber"] for r in losers} == {version + 1}
            assert await stored(kit.db, job) == {"dev1": (status, version + 1)}
            # Only the terminal update changes the pending list; only its winner notifies.
            sent = [t.rsplit("/", 1)[1] for r in results for t, _ in r.notifications]
            assert sent == ([] if status == "IN_PROGRESS" else ["notify", "notify-next"])
    finally:
        await other.close()
        await other_db.close()


async def test_a_batch_that_cannot_commit_fails_every_update_in_it(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"dev{i}" for i in range(5)]
    await kit.add_things(*names)
    job = await kit.deploy(*names)
    real = JobsUnit.lock_notify_states

    def broken(self: JobsUnit, things: Any) -> Any:
        if "dev3" in things:
            raise RuntimeError("disk on fire")
        return real(self, things)

    monkeypatch.setattr(JobsUnit, "lock_notify_states", broken)
    body = {"status": "SUCCEEDED", "clientToken": "t"}
    results = await asyncio.gather(*(update(kit, n, job, body) for n in names))
    # One transaction held all five: none of them is stored, and each device is told to retry.
    assert [r.body["code"] for r in results] == ["InternalError"] * 5
    assert all("fire" not in r.body["message"] for r in results)
    assert await stored(kit.db, job) == {n: ("QUEUED", 1) for n in names}
    monkeypatch.undo()
    results = await asyncio.gather(*(update(kit, n, job, body) for n in names))
    assert all(r.accepted for r in results)
    assert await stored(kit.db, job) == {n: ("SUCCEEDED", 2) for n in names}
