"""The observation writer process: batches answered only once committed, a dead child fails its
batches (never acknowledges them) and is replaced, Ctrl-C does not reach it, and it leaves when
the server closes its pipe or dies."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from lantern.store import Database
from lantern.store.ingest import ObservationRow
from lantern.store.sqlite.ingest_process import ProcessObservationWriter, WriterProcessGone

from .test_fast_paths import counts, row


def child_pid(writer: ProcessObservationWriter) -> int:
    assert writer._proc is not None
    return writer._proc.pid


@pytest.fixture
def path(sqlite_db: Database) -> str:
    found = sqlite_db.sqlite_path
    assert found is not None
    return found


async def test_a_batch_is_answered_after_its_commit_and_close_ends_the_child(path: str) -> None:
    writer = ProcessObservationWriter(path)
    await writer.start()
    pid = child_pid(writer)
    await writer.write([row(i) for i in range(40)], outbox=False, now=1.0)
    assert counts(path) == (40, 80, 0)  # visible to another connection: committed
    await writer.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child has exited and was reaped


async def test_concurrent_batches_each_get_their_own_answer(path: str) -> None:
    writer = ProcessObservationWriter(path)
    try:
        good = [
            writer.write([row(100 + 10 * b + i) for i in range(10)], outbox=True, now=2.0)
            for b in range(5)
        ]
        bad = writer.write([row(900), row(901, project="nope")], outbox=False, now=2.0)
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        assert results[:5] == [None] * 5
        assert isinstance(results[5], sqlite3.IntegrityError)
        assert counts(path) == (50, 100, 50)
    finally:
        await writer.close()


async def test_a_killed_child_fails_its_batch_and_the_next_batch_starts_a_new_one(
    path: str,
) -> None:
    writer = ProcessObservationWriter(path)
    try:
        await writer.write([row(1)], outbox=False, now=1.0)
        first = child_pid(writer)
        os.kill(first, signal.SIGSTOP)  # hold it mid-conversation, then kill it
        pending = asyncio.ensure_future(writer.write([row(2)], outbox=False, now=1.0))
        await asyncio.sleep(0.2)
        assert not pending.done()  # not answered: not committed
        os.kill(first, signal.SIGKILL)
        with pytest.raises(WriterProcessGone):
            await asyncio.wait_for(pending, 10)
        assert counts(path) == (1, 2, 0)  # the unanswered batch was not stored
        await writer.write([row(3)], outbox=False, now=1.0)
        assert child_pid(writer) != first
        assert counts(path) == (2, 4, 0)
    finally:
        await writer.close()


async def test_ctrl_c_to_the_process_group_does_not_stop_the_child(path: str) -> None:
    writer = ProcessObservationWriter(path)
    try:
        await writer.start()
        pid = child_pid(writer)
        # An answered batch: the child is past its imports and has installed its signal
        # handlers (they come before its loop), with no fixed wait.
        await writer.write([row(6)], outbox=False, now=1.0)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await writer.write([row(7)], outbox=False, now=1.0)
        assert child_pid(writer) == pid
        assert counts(path) == (2, 4, 0)
    finally:
        await writer.close()


def test_the_child_leaves_when_its_parent_is_gone(path: str) -> None:
    """The server killed with -9 closes the pipe: the child sees end of file and exits."""
    child = subprocess.Popen(
        [sys.executable, "-m", "lantern.store.sqlite.ingest_process", path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)
        assert child.poll() is None
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_rows_cross_the_pipe_unchanged(path: str) -> None:
    """What the child stores is what the parent sent (marshal keeps floats, None, tuples)."""
    original = ObservationRow(
        id="obs-x",
        project="default",
        thing_name="dev-ü",
        patient_id=None,
        effective_at=1733350000.123456,
        issued_at=0.1 + 0.2,
        resource='{"resourceType":"Observation","note":"é \\"q\\""}',
        codes=(("http://a", "1"), ("urn:b", "ü")),
    )

    async def go() -> None:
        writer = ProcessObservationWriter(path)
        try:
            await writer.write([original], outbox=False, now=0.0)
        finally:
            await writer.close()

    asyncio.run(go())
    conn = sqlite3.connect(path)
    try:
        stored = conn.execute(
            "SELECT id, project, thing_name, patient_id, effective_at, issued_at, resource "
            "FROM observations"
        ).fetchone()
        codes = conn.execute(
            "SELECT position, system, code FROM observation_codes ORDER BY position"
        ).fetchall()
    finally:
        conn.close()
    assert stored == (
        original.id,
        original.project,
        original.thing_name,
        None,
        original.effective_at,
        original.issued_at,
        original.resource,
    )
    assert codes == [(0, "http://a", "1"), (1, "urn:b", "ü")]
