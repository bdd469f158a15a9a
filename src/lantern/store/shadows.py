"""Repository of device shadows (table in :mod:`lantern.store.schema.shadows`), the same on
SQLite and PostgreSQL.

The port the shadow service uses is :class:`ShadowUnitOfWork` (what one transaction reads and
writes) and :class:`ShadowUnits` (a way to run one); :class:`ShadowsStore` implements them on
the database's :class:`~lantern.store.transactions.Transactions` (on a SQLite file, its writer
thread).

A group-commit batch reads every shadow it touches with one statement (:meth:`ShadowUnit.get_many`)
and writes them back with one (:meth:`ShadowUnit.store`): on a writer thread beside a busy event
loop every statement costs a GIL hand-over (see :mod:`lantern.store.sqlite.rows`), so statements
per batch, not per change. On SQLite the write is a multi-row upsert: the batch's transaction
holds the write lock from its first statement (``BEGIN IMMEDIATE``), nothing can change a row
between its read and its write. On PostgreSQL each row is a compare-and-swap on
``(version, deleted)``: :meth:`ShadowUnit.store` returns the shadows someone else changed first
(nothing of them written) for the service to re-read and re-apply.

Statements are SQLAlchemy Core, compiled once per size
(:class:`~lantern.store.sqlite.prepared.Prepared`; lists are padded to a power of two, so a few
sizes serve any batch).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import BindParameter

from lantern.store.schema.registry import things as _things
from lantern.store.schema.shadows import shadows as _s
from lantern.store.sqlite.prepared import Prepared
from lantern.store.transactions import Transactions

__all__ = [
    "Key",
    "ShadowRecord",
    "ShadowUnit",
    "ShadowUnitOfWork",
    "ShadowUnits",
    "ShadowsStore",
]

T = TypeVar("T")
Key = tuple[str, str]  # (thing name, shadow name; "" for the classic shadow)
#: Keys per read statement and rows per upsert at most (512 and 768 parameters: under SQLite's
#: historical limit of 999).
CHUNK = 256
UPSERT_CHUNK = 128


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """A stored shadow row: ``document`` (a JSON object the service defines) is None once
    deleted; ``version`` is then the deleted shadow's last version."""

    thing_name: str
    shadow_name: str
    version: int
    document: dict[str, Any] | None

    @property
    def key(self) -> Key:
        return (self.thing_name, self.shadow_name)


_COLUMNS = (_s.c.thing_name, _s.c.shadow_name, _s.c.version, _s.c.deleted, _s.c.document)
_GET = Prepared(
    select(*_COLUMNS).where(
        _s.c.thing_name == bindparam("p_thing"), _s.c.shadow_name == bindparam("p_name")
    )
)
_THING = Prepared(select(_things.c.name).where(_things.c.name == bindparam("p_thing")))
_INSERT = Prepared(
    insert(_s).values(
        thing_name=bindparam("p_thing"),
        shadow_name=bindparam("p_name"),
        version=bindparam("p_version"),
        deleted=bindparam("p_deleted"),
        document=bindparam("p_document"),
        updated_at=bindparam("p_updated"),
    )
)
_REPLACE = Prepared(
    update(_s)
    .where(
        _s.c.thing_name == bindparam("p_thing"),
        _s.c.shadow_name == bindparam("p_name"),
        _s.c.version == bindparam("p_old_version"),
        _s.c.deleted == bindparam("p_old_deleted"),
    )
    .values(
        version=bindparam("p_version"),
        deleted=bindparam("p_deleted"),
        document=bindparam("p_document"),
        updated_at=bindparam("p_updated"),
    )
)
_NAMES = (
    select(_s.c.shadow_name)
    .where(
        _s.c.thing_name == bindparam("p_thing"),
        _s.c.shadow_name > bindparam("p_after"),
        _s.c.deleted == 0,
    )
    .order_by(_s.c.shadow_name)
    .limit(bindparam("p_limit"))
)


@functools.cache
def _get_many(things: int, names: int) -> Prepared:
    """Rows whose thing is one of ``things`` names and whose shadow one of ``names`` (a superset
    of the keys wanted, found through the primary key; a row-value IN list would scan)."""
    return Prepared(
        select(*_COLUMNS).where(
            _s.c.thing_name.in_([bindparam(f"t{i}") for i in range(things)]),
            _s.c.shadow_name.in_([bindparam(f"s{i}") for i in range(names)]),
        )
    )


@functools.cache
def _things_in(size: int) -> Prepared:
    names: list[BindParameter[Any]] = [bindparam(f"t{i}") for i in range(size)]
    return Prepared(select(_things.c.name).where(_things.c.name.in_(names)))


@functools.cache
def _upsert(size: int) -> Prepared:
    """SQLite: ``size`` rows inserted, or replacing the row of their key."""
    rows: list[dict[str, BindParameter[Any]]] = [
        {
            "thing_name": bindparam(f"t{i}"),
            "shadow_name": bindparam(f"s{i}"),
            "version": bindparam(f"v{i}"),
            "deleted": bindparam(f"d{i}"),
            "document": bindparam(f"j{i}"),
            "updated_at": bindparam(f"u{i}"),
        }
        for i in range(size)
    ]
    statement = sqlite_insert(_s).values(rows)
    excluded = statement.excluded
    return Prepared(
        statement.on_conflict_do_update(
            index_elements=[_s.c.thing_name, _s.c.shadow_name],
            set_={
                "version": excluded.version,
                "deleted": excluded.deleted,
                "document": excluded.document,
                "updated_at": excluded.updated_at,
            },
        )
    )


def _padded(items: Sequence[T]) -> list[T]:
    """``items`` repeated at the end up to a power of two (a duplicate changes no result)."""
    size = 1 << (len(items) - 1).bit_length()
    return [*items, *([items[-1]] * (size - len(items)))]


def _chunks(items: Sequence[T], size: int = CHUNK) -> list[list[T]]:
    return [_padded(items[i : i + size]) for i in range(0, len(items), size)]


def _encode(document: dict[str, Any] | None) -> str:
    return json.dumps(document or {}, separators=(",", ":"), ensure_ascii=False)


def _record(row: Sequence[Any]) -> ShadowRecord:
    thing, name, version, deleted, document = row
    return ShadowRecord(thing, name, version, None if deleted else json.loads(document))


class ShadowUnitOfWork(Protocol):
    """What the shadow service reads and writes inside one transaction."""

    def get(self, thing_name: str, shadow_name: str) -> ShadowRecord | None: ...

    def get_many(self, keys: Sequence[Key]) -> dict[Key, ShadowRecord]:
        """The rows of ``keys`` that exist (deleted ones included)."""
        ...

    def thing_exists(self, thing_name: str) -> bool: ...

    def existing_things(self, thing_names: Sequence[str]) -> set[str]: ...

    def store(
        self, changes: Sequence[tuple[ShadowRecord | None, ShadowRecord]], now: float
    ) -> set[Key]:
        """Write each ``(read, new)`` pair: ``new`` replaces the row ``read`` (None: no row
        existed). Returns the keys whose row is no longer ``read`` (changed by someone else
        since; nothing of them written)."""
        ...

    def named_shadows(self, thing_name: str, after: str, limit: int) -> list[str]:
        """Names of the thing's named shadows (not deleted) after ``after``, in order."""
        ...


class ShadowUnits(Protocol):
    """Runs a function of a :class:`ShadowUnitOfWork` in one transaction."""

    async def write(self, fn: Callable[[ShadowUnitOfWork], T]) -> T: ...

    async def read(self, fn: Callable[[ShadowUnitOfWork], T]) -> T: ...


class ShadowUnit:
    """:class:`ShadowUnitOfWork` in the transaction of a synchronous connection."""

    __slots__ = ("conn", "sqlite")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def get(self, thing_name: str, shadow_name: str) -> ShadowRecord | None:
        row = _GET.first(self.conn, {"p_thing": thing_name, "p_name": shadow_name})
        return None if row is None else _record(row)

    def get_many(self, keys: Sequence[Key]) -> dict[Key, ShadowRecord]:
        wanted = set(keys)
        found: dict[Key, ShadowRecord] = {}
        for chunk in _chunks(list(wanted)):
            things = _padded(list({thing for thing, _ in chunk}))
            names = _padded(list({name for _, name in chunk}))
            params = {f"t{i}": thing for i, thing in enumerate(things)}
            params.update({f"s{i}": name for i, name in enumerate(names)})
            for row in _get_many(len(things), len(names)).rows(self.conn, params):
                if (row[0], row[1]) in wanted:
                    record = _record(row)
                    found[record.key] = record
        return found

    def thing_exists(self, thing_name: str) -> bool:
        return _THING.first(self.conn, {"p_thing": thing_name}) is not None

    def existing_things(self, thing_names: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(thing_names))):
            params = {f"t{i}": name for i, name in enumerate(chunk)}
            out.update(row[0] for row in _things_in(len(chunk)).rows(self.conn, params))
        return out

    def store(
        self, changes: Sequence[tuple[ShadowRecord | None, ShadowRecord]], now: float
    ) -> set[Key]:
        if not changes:
            return set()
        if self.sqlite:
            self._upsert([new for _, new in changes], now)
            return set()
        lost: set[Key] = set()
        for read, new in changes:
            values = self._values(new, now)
            if read is None:
                _INSERT.run(self.conn, values)
                continue
            values["p_old_version"] = read.version
            values["p_old_deleted"] = int(read.document is None)
            if _REPLACE.run(self.conn, values) != 1:
                lost.add(new.key)
        return lost

    def named_shadows(self, thing_name: str, after: str, limit: int) -> list[str]:
        params = {"p_thing": thing_name, "p_after": after, "p_limit": limit}
        return [row[0] for row in self.conn.execute(_NAMES, params) if row[0]]

    def _upsert(self, records: Sequence[ShadowRecord], now: float) -> None:
        for chunk in _chunks(records, UPSERT_CHUNK):
            params: dict[str, Any] = {}
            for i, r in enumerate(chunk):
                params[f"t{i}"], params[f"s{i}"] = r.thing_name, r.shadow_name
                params[f"v{i}"], params[f"d{i}"] = r.version, int(r.document is None)
                params[f"j{i}"], params[f"u{i}"] = _encode(r.document), now
            _upsert(len(chunk)).run(self.conn, params)

    @staticmethod
    def _values(record: ShadowRecord, now: float) -> dict[str, Any]:
        return {
            "p_thing": record.thing_name,
            "p_name": record.shadow_name,
            "p_version": record.version,
            "p_deleted": int(record.document is None),
            "p_document": _encode(record.document),
            "p_updated": now,
        }


class ShadowsStore:
    """:class:`ShadowUnits` on the database's units of work."""

    def __init__(self, transactions: Transactions) -> None:
        self._transactions = transactions

    async def write(self, fn: Callable[[ShadowUnitOfWork], T]) -> T:
        return await self._transactions.write(lambda conn: fn(ShadowUnit(conn)))

    async def read(self, fn: Callable[[ShadowUnitOfWork], T]) -> T:
        return await self._transactions.read(lambda conn: fn(ShadowUnit(conn)))
