"""Units of work: a synchronous function of a connection, run in one transaction.

A writer that applies many small requests (group commit) writes them as ONE synchronous
function of a SQLAlchemy :class:`~sqlalchemy.engine.Connection`, run in one transaction, instead
of awaiting every statement through the async engine. :class:`Transactions` is the interface;
:attr:`lantern.store.Database.transactions` gives the one each database needs:

* a SQLite file: :class:`~lantern.store.sqlite.writer_thread.WriterThread` (one thread, one
  connection, ``BEGIN IMMEDIATE``);
* anything else (PostgreSQL, in-memory SQLite): :class:`EngineTransactions`, the function run by
  ``AsyncConnection.run_sync`` inside the async engine's transaction.

Both commit before returning and roll everything back when the function raises. On PostgreSQL
concurrent units of work may interleave (READ COMMITTED): a unit that reads before it writes
must lock or compare-and-swap (as the repositories' ``*_for_update`` and CAS functions do); on
SQLite they run one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from lantern.store.db import Database

__all__ = ["EngineTransactions", "Transactions", "each_in_savepoint"]

T = TypeVar("T")
R = TypeVar("R")


class Transactions(Protocol):
    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn``'s result once its transaction committed; its exception (rolled back) else."""
        ...

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn``'s result, on committed data (nothing it does is kept)."""
        ...

    async def close(self) -> None: ...


class EngineTransactions:
    """:class:`Transactions` through the async engine (``run_sync``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, fn: Callable[[Connection], T]) -> T:
        async with self._db.transaction() as conn:
            return await conn.run_sync(fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        async with self._db.connect() as conn:
            return await conn.run_sync(fn)

    async def close(self) -> None:
        """Nothing of its own to close (the engine belongs to the database)."""


def each_in_savepoint(
    conn: Connection, requests: Sequence[R], apply: Callable[[Connection, R], T]
) -> list[T | Exception]:
    """Apply every request in a SAVEPOINT of the current transaction: one that raises is rolled
    back alone and its exception becomes its outcome (for :class:`GroupCommit` batches whose
    requests must behave as if each had a transaction of its own)."""
    outcomes: list[T | Exception] = []
    for request in requests:
        savepoint = conn.begin_nested()
        try:
            result: Any = apply(conn, request)
        except Exception as exc:
            savepoint.rollback()
            outcomes.append(exc)
        else:
            savepoint.commit()
            outcomes.append(result)
    return outcomes
