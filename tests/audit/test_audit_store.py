"""The audit log's storage and recorder on SQLite and PostgreSQL: entries commit with the action
or not at all, failures are recorded, filters and pages, and the rate limit of auth.failed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lantern.audit import Actor, AuditError, acting_as, audited
from lantern.audit.auth_failures import AuthFailures
from lantern.audit.queries import AuditQueryError, read_page
from lantern.store import Database
from lantern.store import audit as repo
from lantern.store.schema.audit import audit_log
from lantern.store.schema.core import projects


async def _all(db: Database) -> list[repo.AuditRow]:
    async with db.connect() as conn:
        return await repo.page(conn, repo.AuditFilter(), 1000)


async def _project_count(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(projects))).scalar_one())


async def test_entry_commits_with_the_action_or_not_at_all(db: Database) -> None:
    with acting_as(Actor("cli:alice")):
        async with audited(db, "project.create", "p1", note="x") as act:
            async with db.transaction() as conn:
                await conn.execute(projects.insert().values(name="p1", created_at=1.0))
                await act.record(conn, extra=1)
        with pytest.raises(RuntimeError):
            async with audited(db, "project.create", "p2") as act:
                async with db.transaction() as conn:
                    await conn.execute(projects.insert().values(name="p2", created_at=1.0))
                    await act.record(conn)
                    raise RuntimeError("the change fails after its entry was written")
    assert await _project_count(db) == 2  # default + p1: p2 rolled back with its ok entry
    rows = await _all(db)
    assert [(r.action, r.target, r.outcome) for r in rows] == [
        ("project.create", "p2", "failed"),
        ("project.create", "p1", "ok"),
    ]
    failed, ok = rows
    assert failed.details == {"error": "RuntimeError"}  # the class, never the message
    assert ok.actor == failed.actor == "cli:alice"
    assert ok.details == {"note": "x", "extra": 1}
    assert ok.id > 0 and failed.id > ok.id


async def test_without_record_the_entry_is_written_after_the_block(db: Database) -> None:
    async with audited(db, "thing.touch", "t1") as act:
        act.details["n"] = 2
    (row,) = await _all(db)
    assert (row.actor, row.action, row.target, row.outcome, row.details) == (
        "system",
        "thing.touch",
        "t1",
        "ok",
        {"n": 2},
    )


async def test_after_commit_entry_that_cannot_be_written_is_an_error(db: Database) -> None:
    with pytest.raises(AuditError, match="was done"):
        async with audited(db, "x" * 70, "t") as act:
            act.details["bad"] = object()  # not JSON: the write fails


async def test_details_naming_a_secret_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="secrets"):
        async with audited(db, "mqtt_user.create", "bob", password="hunter2"):
            pass
    assert await _all(db) == []


async def _seed(db: Database) -> None:
    entries = [
        (100.0, "admin-token", "claim.create", "c1"),
        (200.0, "cli:alice", "claim.revoke", "c1"),
        (300.0, "admin-token", "mqtt_user.create", "u1"),
        (400.0, "admin-token", "mqtt-user.odd", "u2"),
        (500.0, "cli:bob", "thing.delete", "t1"),
    ]
    async with db.transaction() as conn:
        for at, actor, action, target in entries:
            await repo.insert_entry(
                conn, repo.NewAuditEntry(at, actor, action, target, "ok", "10.0.0.1")
            )


async def test_filters_and_pages_newest_first(db: Database) -> None:
    await _seed(db)
    page = await read_page(db, limit=2)
    assert [r.target for r in page.entries] == ["t1", "u2"]
    assert page.next_cursor is not None
    page2 = await read_page(db, limit=2, cursor=page.next_cursor)
    assert [r.action for r in page2.entries] == ["mqtt_user.create", "claim.revoke"]
    page3 = await read_page(db, limit=2, cursor=page2.next_cursor)
    assert [r.action for r in page3.entries] == ["claim.create"]
    assert page3.next_cursor is None

    assert [r.action for r in (await read_page(db, action="claim")).entries] == [
        "claim.revoke",
        "claim.create",
    ]
    # The prefix is literal: '_' is no wildcard (mqtt-user.odd does not match mqtt_user).
    assert [r.target for r in (await read_page(db, action="mqtt_user")).entries] == ["u1"]
    admin = await read_page(db, actor="admin-token")
    assert [r.target for r in admin.entries] == ["u2", "u1", "c1"]
    assert [r.target for r in (await read_page(db, since=300.0)).entries] == ["t1", "u2", "u1"]
    both = await read_page(db, since=150.0, actor="admin-token", action="mqtt")
    assert [r.target for r in both.entries] == ["u2", "u1"]
    assert all(r.remote == "10.0.0.1" for r in admin.entries)
    with pytest.raises(AuditQueryError, match="cursor"):
        await read_page(db, cursor="abc")
    with pytest.raises(AuditQueryError, match="limit"):
        await read_page(db, limit=0)


class Clock:
    def __init__(self) -> None:
        self.now = 6000.0

    def __call__(self) -> float:
        return self.now


async def test_auth_failures_are_one_entry_per_address_per_minute(db: Database) -> None:
    clock = Clock()
    failures = AuthFailures(db, clock=clock, max_addresses=2, flush_delay=0.01)
    for _ in range(50):
        await failures.failed("10.0.0.1", "GET /v1/claims")
    await failures.failed("10.0.0.2", "DELETE /v1/things/x")
    await failures.failed("10.0.0.3", "GET /v1/audit")  # third address: shared "*" entry
    await failures.failed("10.0.0.4", "GET /v1/audit")
    await failures.flush()
    rows = {r.remote: r for r in await _all(db)}
    assert set(rows) == {"10.0.0.1", "10.0.0.2", "*"}
    first = rows["10.0.0.1"]
    assert (first.actor, first.action, first.outcome, first.target) == (
        "unknown",
        "auth.failed",
        "denied",
        "GET /v1/claims",
    )
    assert first.details == {"count": 50}
    assert rows["*"].details == {"count": 2}
    clock.now += 60  # the next minute: a new entry for the same address
    await failures.failed("10.0.0.1", "GET /v1/claims")
    await failures.close()
    async with db.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
    assert count == 4
