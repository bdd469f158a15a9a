"""Repository of device shadows (table in :mod:`lantern.store.schema.shadows`), the same on
SQLite and PostgreSQL.

The port the shadow service uses is :class:`ShadowUnitOfWork` (what one transaction reads and
writes) and :class:`ShadowUnits` (a way to run one); :class:`ShadowsStore` implements them on
the database's :class:`~lantern.store.transactions.Transactions` (on a SQLite file, its writer
thread). Every change is a compare-and-swap on ``(version, deleted)``: two writers racing on one
shadow cannot both win. The hot statements are :class:`~lantern.store.sqlite.prepared.Prepared`
from their Core statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, bindparam, insert, select, update

from lantern.store.schema.registry import things as _things
from lantern.store.schema.shadows import shadows as _s
from lantern.store.sqlite.prepared import Prepared
from lantern.store.transactions import Transactions

__all__ = [
    "ShadowRecord",
    "ShadowUnit",
    "ShadowUnitOfWork",
    "ShadowUnits",
    "ShadowsStore",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """A stored shadow row: ``document`` (a JSON object the service defines) is None once
    deleted; ``version`` is then the deleted shadow's last version."""

    thing_name: str
    shadow_name: str
    version: int
    document: dict[str, Any] | None


_GET = Prepared(
    select(_s.c.version, _s.c.deleted, _s.c.document).where(
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


def _encode(document: dict[str, Any] | None) -> str:
    return json.dumps(document or {}, separators=(",", ":"), ensure_ascii=False)


class ShadowUnitOfWork(Protocol):
    """What the shadow service reads and writes inside one transaction."""

    def get(self, thing_name: str, shadow_name: str) -> ShadowRecord | None: ...

    def thing_exists(self, thing_name: str) -> bool: ...

    def insert(self, record: ShadowRecord, now: float) -> None:
        """Store a shadow of which no row exists yet."""
        ...

    def replace(self, current: ShadowRecord, new: ShadowRecord, now: float) -> bool:
        """Store ``new`` only if the row is still ``current`` (version and deleted). False:
        someone else changed it first, nothing was written."""
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

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, thing_name: str, shadow_name: str) -> ShadowRecord | None:
        row = _GET.first(self.conn, {"p_thing": thing_name, "p_name": shadow_name})
        if row is None:
            return None
        version, deleted, document = row
        stored = None if deleted else json.loads(document)
        return ShadowRecord(thing_name, shadow_name, version, stored)

    def thing_exists(self, thing_name: str) -> bool:
        return _THING.first(self.conn, {"p_thing": thing_name}) is not None

    def insert(self, record: ShadowRecord, now: float) -> None:
        _INSERT.run(self.conn, self._values(record, now))

    def replace(self, current: ShadowRecord, new: ShadowRecord, now: float) -> bool:
        params = self._values(new, now)
        params["p_old_version"] = current.version
        params["p_old_deleted"] = int(current.document is None)
        return _REPLACE.run(self.conn, params) == 1

    def named_shadows(self, thing_name: str, after: str, limit: int) -> list[str]:
        params = {"p_thing": thing_name, "p_after": after, "p_limit": limit}
        return [row[0] for row in self.conn.execute(_NAMES, params) if row[0]]

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
