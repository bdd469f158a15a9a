"""The database handle: one async engine, SQLite tuned for durability, migrations on open, and
the process's units of work on it (:attr:`Database.transactions`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lantern.errors import LanternError
from lantern.store.sqlite.connection import apply_pragmas, create_private, sqlite_path

if TYPE_CHECKING:
    from lantern.store.transactions import Transactions

InTransaction = Callable[[AsyncConnection], Awaitable[None]]
"""Extra work a caller hands a repository method to do inside that method's transaction (e.g.
writing the audit entry of the change, so both commit or neither does)."""


class StoreError(LanternError):
    """The store cannot do what was asked (unreachable database, failed migration, conflict)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    apply_pragmas(dbapi_connection)


class Database:
    """An async engine plus helpers. Open with :meth:`open`, which migrates to the latest schema."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._transactions: Transactions | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def sqlite_path(self) -> str | None:
        """The file behind this database when it is a SQLite file, else None."""
        return sqlite_path(self.engine.url)

    @property
    def transactions(self) -> Transactions:
        """This process's units of work on the database (one per database: on a SQLite file,
        its one writer thread). See :mod:`lantern.store.transactions`."""
        if self._transactions is None:
            path = self.sqlite_path
            if path is not None:
                from lantern.store.sqlite.writer_thread import WriterThread

                self._transactions = WriterThread(path)
            else:
                from lantern.store.transactions import EngineTransactions

                self._transactions = EngineTransactions(self)
        return self._transactions

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Database:
        """Connect to ``url`` (creating a SQLite file's directory) and upgrade the schema."""
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:" and "?" not in path and not path.startswith("file:"):
                create_private(Path(path))
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        # Parameters (tokens, messages, patient ids) never appear in SQLAlchemy's statement log
        # nor in the text of its exceptions, which Lantern logs.
        engine = create_async_engine(url, hide_parameters=True, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        db = cls(engine)
        if migrate:
            from lantern.store.migrate import upgrade

            try:
                await upgrade(engine)
            except Exception as exc:
                await engine.dispose()
                raise StoreError(f"cannot open or migrate the database at {url}: {exc}") from exc
        return db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success, rolled back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        transactions, self._transactions = self._transactions, None
        if transactions is not None:
            await transactions.close()
        await self.engine.dispose()
