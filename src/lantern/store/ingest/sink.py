"""Where batches of observations go: the :class:`ObservationSink` port and the factory that picks
its implementation for a database.

The ingest service's group commit hands every batch to a sink, which stores it in ONE
transaction (observations, their codes, outbox entries) and returns only after the commit; when
it raises, nothing of the batch is stored. Which sink a database gets is decided here, never by
the service:

* a SQLite file: the writer process (default) or writer thread of
  :mod:`lantern.store.sqlite.observations`: multi-row statements on a connection of its own,
  batches committed in the order given (so two may be handed over at once, ``pipeline = 2``);
* anything else (PostgreSQL, in-memory SQLite): :class:`EngineObservationSink`, the batch as
  one transaction of the async engine (on PostgreSQL three ``INSERT … SELECT unnest(…)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from lantern.store.ingest.observations import insert_observations_sync
from lantern.store.ingest.ports import ObservationSink
from lantern.store.ingest.records import ObservationRow

if TYPE_CHECKING:
    from lantern.store.db import Database

__all__ = ["EngineObservationSink", "ObservationSink", "SqliteWriterKind", "open_observation_sink"]

SqliteWriterKind = Literal["process", "thread"]
# Batches a PostgreSQL sink commits at once (each on a connection of its own; they are
# independent, so their order does not matter). Other engines (in-memory SQLite) take one.
POSTGRESQL_PIPELINE = 2


class EngineObservationSink:
    """Each batch in one transaction of ``db``'s async engine."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.pipeline = POSTGRESQL_PIPELINE if db.engine.dialect.name == "postgresql" else 1

    async def start(self) -> None:
        """Nothing to start: the engine's pool connects on demand."""

    async def write(self, rows: Sequence[ObservationRow], *, outbox: bool, now: float) -> None:
        if not rows:
            return
        async with self._db.transaction() as conn:
            await conn.run_sync(lambda c: insert_observations_sync(c, rows, outbox=outbox, now=now))

    async def close(self) -> None:
        """Nothing of its own to close (the engine belongs to the database)."""


def open_observation_sink(db: Database, *, writer: SqliteWriterKind = "process") -> ObservationSink:
    """The sink for ``db``: on a SQLite file its writer ``process`` or ``thread``, else the
    engine. Not started yet (:meth:`ObservationSink.start`)."""
    path = db.sqlite_path
    if path is None:
        return EngineObservationSink(db)
    if writer == "process":
        from lantern.store.sqlite.ingest_process import ProcessObservationWriter

        return ProcessObservationWriter(path)
    from lantern.store.sqlite.observations import SqliteObservationWriter

    return SqliteObservationWriter(path)
