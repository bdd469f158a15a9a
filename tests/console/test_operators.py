"""Operator accounts and console sessions on both databases (the ``db`` fixture)."""

from __future__ import annotations

import pytest

from lantern.audit.queries import read_page
from lantern.operators import (
    OperatorConflict,
    OperatorError,
    OperatorNotFound,
    SessionStore,
    authenticate,
    create_operator,
    disable_operator,
    list_operators,
)
from lantern.store import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_accounts_are_created_listed_authenticated_and_disabled(db: Database) -> None:
    await create_operator(db, "olga", "operator", "correct horse battery")
    assert [(o.name, o.role, o.disabled) for o in await list_operators(db)] == [
        ("olga", "operator", False)
    ]
    assert (await authenticate(db, "olga", "correct horse battery")) is not None
    assert await authenticate(db, "olga", "wrong password!!") is None
    assert await authenticate(db, "nobody", "correct horse battery") is None
    await disable_operator(db, "olga")
    assert await authenticate(db, "olga", "correct horse battery") is None
    with pytest.raises(OperatorConflict):
        await disable_operator(db, "olga")
    with pytest.raises(OperatorNotFound):
        await disable_operator(db, "ghost")
    page = await read_page(db, since=None, actor=None, action="operator", cursor=None, limit=10)
    assert [(e.action, e.outcome) for e in page.entries] == [
        ("operator.disable", "failed"),
        ("operator.disable", "failed"),
        ("operator.disable", "ok"),
        ("operator.create", "ok"),
    ]


@pytest.mark.parametrize(
    ("name", "role", "password", "says"),
    [
        ("bad name!", "viewer", "long enough pw", "name"),
        ("ok", "root", "long enough pw", "role"),
        ("ok", "viewer", "short", "too short"),
    ],
)
async def test_bad_accounts_are_refused_and_nothing_is_stored(
    db: Database, name: str, role: str, password: str, says: str
) -> None:
    with pytest.raises(OperatorError, match=says):
        await create_operator(db, name, role, password)
    assert await list_operators(db) == []


async def test_a_taken_name_is_a_conflict(db: Database) -> None:
    await create_operator(db, "ann", "viewer", "long enough pw")
    with pytest.raises(OperatorConflict):
        await create_operator(db, "ann", "admin", "another long pw")
    assert [o.role for o in await list_operators(db)] == ["viewer"]


async def test_sessions_expire_when_idle_and_end_on_sign_out(db: Database) -> None:
    clock = Clock()
    store = SessionStore(db, idle_timeout=600, touch_interval=30, clock=clock)
    session_id, session = await store.sign_in("ann", "viewer", "10.0.0.1")
    found = await store.lookup(session_id, "10.0.0.1")
    assert found is not None and found.role == "viewer" and found.csrf_token == session.csrf_token
    assert await store.lookup("not-a-session", None) is None
    clock.now += 500  # used within the idle timeout: its clock restarts
    assert await store.lookup(session_id, None) is not None
    clock.now += 500
    assert await store.lookup(session_id, None) is not None
    clock.now += 601  # idle too long
    assert await store.lookup(session_id, None) is None
    clock.now += 1
    assert await store.lookup(session_id, None) is None  # deleted, not only refused

    second_id, second = await store.sign_in("admin-token", "admin", None)
    await store.sign_out(second)
    assert await store.lookup(second_id, None) is None


async def test_disabling_an_account_ends_its_sessions(db: Database) -> None:
    await create_operator(db, "olga", "operator", "correct horse battery")
    store = SessionStore(db, idle_timeout=600)
    session_id, _ = await store.sign_in("olga", "operator", None)
    await disable_operator(db, "olga")
    assert await store.lookup(session_id, None) is None
