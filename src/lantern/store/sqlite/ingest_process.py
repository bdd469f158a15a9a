"""The observation writer in a process of its own: SQLite inserts and fsyncs without the GIL.

:class:`~lantern.store.sqlite.observations.SqliteObservationWriter` writes from a thread of the
server process. The ``sqlite3`` driver releases the GIL around every statement and must take it
back from the event loop afterwards; when the loop is busy (catching up after a slow commit),
each of those hand-overs waits up to the 5 ms switch interval, the commit gets slower still and
messages queue up: the tail of publish -> PUBACK latency. :class:`ProcessObservationWriter`
sends each batch to a child process (``python -m lantern.store.sqlite.ingest_process <db
file>``) over a pipe and awaits its answer, which the child sends only after the COMMIT returned
(``synchronous=FULL`` as before). The child runs the same statements on its own connection and
its own WAL checkpointer, and shares no GIL with the server.

Frames, both ways: a 4-byte big-endian length, then :mod:`marshal` data (plain tuples, str,
float, None): requests ``(batch_id, outbox, now, rows)``, answers ``(batch_id, error)`` where
``error`` is None or ``(sqlite3 exception class name, message)``. The child ignores SIGINT and
SIGTERM (a Ctrl-C reaches the whole process group; the server decides when to stop) and exits
when its stdin closes: at shutdown, or when the server died (kill -9 included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence

from lantern.store.db import StoreError
from lantern.store.ingest.records import ObservationRow
from lantern.store.sqlite.observations import SQLITE_PIPELINE, SqliteBatchWriter

log = logging.getLogger(__name__)

_HEAD = 4


class WriterProcessGone(StoreError, sqlite3.OperationalError):
    """The writer process ended before answering: the batch may or may not be stored."""


class ProcessObservationWriter:
    """Same interface as ``SqliteObservationWriter``; starts its child on first use and again
    after the child died (the batches in flight then fail; nothing is acknowledged unstored)."""

    pipeline = SQLITE_PIPELINE

    def __init__(self, path: str) -> None:
        self._path = path
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0

    async def start(self) -> None:
        """Start the child now (its imports take a moment), not at the first observation."""
        await self._ensure_running()

    async def _ensure_running(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if (
            proc is None
            or proc.returncode is not None
            or self._reader is None
            or self._reader.done()
        ):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lantern.store.sqlite.ingest_process",
                self._path,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self._proc = proc
            self._reader = asyncio.create_task(
                self._read_answers(proc), name="ingest-writer-answers"
            )
        return proc

    async def write(self, rows: Sequence[ObservationRow], *, outbox: bool, now: float) -> None:
        """Commit ``rows`` in one transaction in the child; raises the driver's
        error class when nothing was stored, :class:`WriterProcessGone` if the child died."""
        if not rows:
            return
        proc = await self._ensure_running()
        assert proc.stdin is not None
        batch_id = self._next_id
        self._next_id += 1
        data = marshal.dumps(
            (
                batch_id,
                outbox,
                now,
                [
                    (
                        r.id,
                        r.project,
                        r.thing_name,
                        r.patient_id,
                        r.effective_at,
                        r.issued_at,
                        r.resource,
                        r.codes,
                    )
                    for r in rows
                ],
            )
        )
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[batch_id] = answer
        proc.stdin.write(len(data).to_bytes(_HEAD, "big") + data)
        await answer

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                head = await proc.stdout.readexactly(_HEAD)
                body = await proc.stdout.readexactly(int.from_bytes(head, "big"))
                batch_id, error = marshal.loads(body)  # noqa: S302 - our own child, a private pipe
                answer = self._pending.pop(batch_id, None)
                if answer is None or answer.done():
                    continue
                if error is None:
                    answer.set_result(None)
                else:
                    kind = getattr(sqlite3, error[0], sqlite3.Error)
                    if not (isinstance(kind, type) and issubclass(kind, sqlite3.Error)):
                        kind = sqlite3.Error
                    answer.set_exception(kind(error[1]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            pending, self._pending = self._pending, {}
            for answer in pending.values():
                if not answer.done():
                    answer.set_exception(WriterProcessGone("the observation writer process ended"))
            if pending:
                log.error(
                    "the observation writer process ended with %d batch(es) unanswered",
                    len(pending),
                )

    async def close(self) -> None:
        """Close the child's stdin (it finishes what it has, answers and exits), then wait."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None at end of file."""
    parts: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(path: str, stdin: int = 0, stdout: int = 1) -> None:
    """The child's loop: a batch in, one transaction, its answer out, until stdin closes."""
    writer = SqliteBatchWriter(path)
    try:
        while True:
            head = _read_exactly(stdin, _HEAD)
            if head is None:
                return
            body = _read_exactly(stdin, int.from_bytes(head, "big"))
            if body is None:
                return
            batch_id, outbox, now, raw_rows = marshal.loads(body)  # noqa: S302 - from our parent
            rows = [ObservationRow(*fields) for fields in raw_rows]
            error: tuple[str, str] | None = None
            try:
                writer.write(rows, outbox, now)
            except sqlite3.Error as exc:
                error = (type(exc).__name__, str(exc))
            answer = marshal.dumps((batch_id, error))
            _write_all(stdout, len(answer).to_bytes(_HEAD, "big") + answer)
    finally:
        writer.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Answers go to the pipe on fd 1 through a private copy of it; anything a library prints
    # goes to stderr instead, where it cannot corrupt a frame.
    answers = os.dup(1)
    os.dup2(2, 1)
    serve(sys.argv[1], stdout=answers)
