"""Per-thing notification state (``job_thing_notify``), the same on every database.

* :func:`lock_notify_state` / :func:`lock_notify_states` return what the last notification told
  a thing, creating the row (``("", None, dirty=False)``) when the thing has none, and hold it
  until the transaction ends: on PostgreSQL by a row lock (``FOR UPDATE``, rows taken in name
  order so two transactions cannot deadlock on them), on SQLite by the transaction's write lock.
  Two transactions evaluating one thing therefore take turns, and each sees what the other saved.
* :func:`save_notify_state` / :func:`save_notify_states` record a new state and clear ``dirty``.
  They update the row a lock created; a thing never locked has no row, and nothing is saved
  (:func:`save_notify_state` says so by returning False).
* :func:`mark_dirty` flags things whose executions changed (creating rows as needed) for the
  server's timer to evaluate; :func:`dirty_things` lists them; :func:`clear_dirty` unflags.

Rows are created without a database-specific upsert: an INSERT in a SAVEPOINT, and if a
concurrent transaction created the same row first (PostgreSQL waits for it, then reports the
duplicate key), that savepoint alone is rolled back and the row, now committed, is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, false, insert, null, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter

from lantern.store.db import StoreError
from lantern.store.jobs.records import NOTIFY_COLUMNS, NotifyState, notify_state
from lantern.store.schema.jobs import job_thing_notify as _t
from lantern.store.sqlite.prepared import Prepared

__all__ = [
    "CHUNK",
    "chunks",
    "clear_dirty",
    "dirty_things",
    "lock_notify_state",
    "lock_notify_states",
    "mark_dirty",
    "save_notify_state",
    "save_notify_states",
]

CHUNK = 500  # names per IN (...) list, well under every database's parameter limit
_CREATE_ATTEMPTS = 3
_THING: BindParameter[str] = bindparam("p_thing")
_THINGS: BindParameter[list[str]] = bindparam("p_things", expanding=True)

_LOCK_ONE = Prepared(select(*NOTIFY_COLUMNS).where(_t.c.thing_name == _THING).with_for_update())
_LOCK_MANY = (
    select(_t.c.thing_name, *NOTIFY_COLUMNS)
    .where(_t.c.thing_name.in_(_THINGS))
    .order_by(_t.c.thing_name)
    .with_for_update()
)
_EXISTING = select(_t.c.thing_name).where(_t.c.thing_name.in_(_THINGS))
_CREATE = insert(_t).values(thing_name=_THING, pending_key="", head_job_id=null(), dirty=false())
_CREATE_DIRTY = insert(_t).values(
    thing_name=_THING, pending_key="", head_job_id=null(), dirty=true()
)
_SAVE = Prepared(
    update(_t)
    .where(_t.c.thing_name == _THING)
    .values(pending_key=bindparam("p_key"), head_job_id=bindparam("p_head"), dirty=false())
)
_CLEAR_ONE = Prepared(
    update(_t).where(_t.c.thing_name == _THING, _t.c.dirty == true()).values(dirty=false())
)
_CLEAR_MANY = (
    update(_t).where(_t.c.thing_name.in_(_THINGS), _t.c.dirty == true()).values(dirty=false())
)
_MARK = update(_t).where(_t.c.thing_name.in_(_THINGS)).values(dirty=true())
_DIRTY = (
    select(_t.c.thing_name)
    .where(_t.c.dirty == true())
    .order_by(_t.c.thing_name)
    .limit(bindparam("p_limit"))
)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most :data:`CHUNK` (one IN list each)."""
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _insert_rows(conn: Connection, statement: Any, names: Sequence[str]) -> bool:
    """Insert a state row per name in a savepoint; False if one already existed (then nothing
    of this call is kept)."""
    try:
        with conn.begin_nested():
            conn.execute(statement, [{"p_thing": name} for name in names])
    except IntegrityError:
        return False
    return True


def _cannot_create(names: Sequence[str]) -> StoreError:
    shown = ", ".join(names[:5])
    return StoreError(f"cannot create the notification state of {shown} (do the things exist?)")


def lock_notify_state(conn: Connection, thing_name: str) -> NotifyState:
    """The thing's state, its row created if missing and locked (module docstring)."""
    for _ in range(_CREATE_ATTEMPTS):
        row = _LOCK_ONE.first(conn, {"p_thing": thing_name})
        if row is not None:
            return notify_state(row)
        _insert_rows(conn, _CREATE, [thing_name])
    raise _cannot_create([thing_name])


def lock_notify_states(conn: Connection, thing_names: Sequence[str]) -> dict[str, NotifyState]:
    """:func:`lock_notify_state` for many things, in name order."""
    names = sorted(set(thing_names))
    if len(names) == 1:
        return {names[0]: lock_notify_state(conn, names[0])}
    out: dict[str, NotifyState] = {}
    for chunk in chunks(names):
        for _ in range(_CREATE_ATTEMPTS):
            rows = conn.execute(_LOCK_MANY, {"p_things": list(chunk)})
            found = {row[0]: notify_state(row[1:]) for row in rows}
            missing = [name for name in chunk if name not in found]
            if not missing:
                break
            _insert_rows(conn, _CREATE, missing)
        else:
            raise _cannot_create(missing)
        out.update(found)
    return out


def save_notify_state(
    conn: Connection, thing_name: str, pending_key: str, head: str | None
) -> bool:
    """Record what was just notified and clear ``dirty``; False if the thing has no state row
    (lock it first)."""
    params = {"p_thing": thing_name, "p_key": pending_key, "p_head": head}
    return _SAVE.run(conn, params) == 1


def save_notify_states(conn: Connection, states: Mapping[str, tuple[str, str | None]]) -> None:
    """:func:`save_notify_state` for many things: ``{thing: (pending_key, head_job_id)}``."""
    if len(states) == 1:
        ((name, (key, head)),) = states.items()
        save_notify_state(conn, name, key, head)
    elif states:
        rows = [{"p_thing": n, "p_key": k, "p_head": h} for n, (k, h) in sorted(states.items())]
        conn.execute(_SAVE.statement, rows)


def clear_dirty(conn: Connection, thing_names: Sequence[str]) -> None:
    """Unflag things (their state is current)."""
    names = sorted(set(thing_names))
    if len(names) == 1:
        _CLEAR_ONE.run(conn, {"p_thing": names[0]})
        return
    for chunk in chunks(names):
        conn.execute(_CLEAR_MANY, {"p_things": list(chunk)})


def mark_dirty(conn: Connection, thing_names: Sequence[str]) -> None:
    """Flag things whose executions changed, for the server to evaluate and notify."""
    for chunk in chunks(sorted(set(thing_names))):
        for _ in range(_CREATE_ATTEMPTS):
            conn.execute(_MARK, {"p_things": list(chunk)})
            existing = {row[0] for row in conn.execute(_EXISTING, {"p_things": list(chunk)})}
            missing = [name for name in chunk if name not in existing]
            if not missing or _insert_rows(conn, _CREATE_DIRTY, missing):
                break
        else:
            raise _cannot_create(missing)


def dirty_things(conn: Connection, limit: int) -> list[str]:
    """Up to ``limit`` flagged things, in name order."""
    return [row[0] for row in conn.execute(_DIRTY, {"p_limit": limit})]
