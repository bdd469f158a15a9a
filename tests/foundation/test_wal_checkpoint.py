"""The WAL checkpointer copies committed pages into the database file from its own thread."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from lantern.store.sqlite.checkpoint import WRITER_AUTOCHECKPOINT_PAGES, WalCheckpointer


def test_committed_pages_reach_the_database_file_without_the_writer_checkpointing(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "wal.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES}")
    writer.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, blob BLOB)")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # start from an empty log
    before = os.path.getsize(path)
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO t (blob) VALUES (?)", [(os.urandom(4000),) for _ in range(500)])
    writer.execute("COMMIT")
    assert os.path.getsize(path) == before  # 2 MB committed, all of it still in the log

    checkpointer = WalCheckpointer(path, interval=0.02)
    checkpointer.start()
    deadline = time.monotonic() + 10
    while checkpointer.checkpoints < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    checkpointer.stop()
    assert checkpointer.checkpoints >= 2
    assert os.path.getsize(path) >= before + 500 * 4000  # copied into the database file
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (500,)
    writer.close()


def test_stop_without_start_and_twice_is_harmless(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "never.db"))
    checkpointer.stop()
    checkpointer.start()
    checkpointer.stop()
    checkpointer.stop()
    assert checkpointer.checkpoints >= 1  # the last round on stop
