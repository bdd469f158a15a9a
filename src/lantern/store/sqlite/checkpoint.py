"""WAL checkpoints from a thread of their own, so that a busy writer's commits do not run them.

By default SQLite checkpoints inside the COMMIT that grows the write-ahead log past 1,000 pages:
that commit copies the log into the database file and fsyncs it, and every caller waiting on it
(a batch of device messages waiting for their PUBACKs) waits too — 50-100 ms stalls every second
or so at 10,000 observations/s. A :class:`WalCheckpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)``
every ``interval`` seconds on its own connection instead; PASSIVE never blocks the writer. The
writer keeps a high automatic threshold (:data:`WRITER_AUTOCHECKPOINT_PAGES`) as a safety net in
case the checkpointer falls behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# 10,000 pages of 4 KiB: the writer checkpoints itself only if the log reaches ~40 MB.
WRITER_AUTOCHECKPOINT_PAGES = 10_000


class WalCheckpointer:
    """Checkpoints the WAL database at ``path`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, path: str, *, interval: float = 0.5) -> None:
        self._path = path
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed runs (for tests)

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name="sqlite-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop after a last checkpoint (so a clean shutdown leaves a short log)."""
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            while True:
                stopping = self._stopping.wait(self._interval)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # e.g. a locked file: the next round tries again
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
                if stopping:
                    return
        finally:
            conn.close()
