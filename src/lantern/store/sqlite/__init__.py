"""Everything SQLite-specific in the store, in one place (no other module of Lantern knows it is
on SQLite): the pragmas every connection gets and the file check (:mod:`.connection`), the
writer thread (:mod:`.writer_thread`), WAL checkpoints beside a busy writer (:mod:`.checkpoint`),
multi-row statements (:mod:`.rows`) and the observation writer, in a thread or a process of its
own (:mod:`.observations`, :mod:`.ingest_process`)."""

from __future__ import annotations

from lantern.store.sqlite.connection import (
    PRAGMAS,
    apply_pragmas,
    connect_raw,
    raw_connection,
    sqlite_path,
    sync_engine,
)
from lantern.store.sqlite.writer_thread import WriterThread

__all__ = [
    "PRAGMAS",
    "WriterThread",
    "apply_pragmas",
    "connect_raw",
    "raw_connection",
    "sqlite_path",
    "sync_engine",
]
