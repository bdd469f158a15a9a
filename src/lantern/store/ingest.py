"""Repository of the ingest service: observations, FHIR read tokens, upload links, files, outbox.

Functions take an ``AsyncConnection`` so callers choose the transaction (the group-commit writer
puts a whole batch of observations, their codes and outbox rows in one). On a SQLite file,
:class:`SqliteObservationWriter` inserts those batches through the driver directly (the hot path).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from lantern.store.db import Database
from lantern.store.schema.ingest import (
    fhir_outbox,
    fhir_tokens,
    files,
    observation_codes,
    observations,
    upload_links,
)
from lantern.store.sqlite.checkpoint import WRITER_AUTOCHECKPOINT_PAGES, WalCheckpointer
from lantern.store.sqlite.rows import multirow_inserts, variable_limit

# -- observations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: str
    project: str
    thing_name: str
    patient_id: str | None
    effective_at: float
    issued_at: float
    resource: str  # the FHIR Observation, serialized JSON
    codes: tuple[tuple[str, str], ...]  # (system, code) of each coding


async def insert_observations(
    conn: AsyncConnection, rows: Sequence[ObservationRow], *, outbox: bool, now: float
) -> None:
    """Insert ``rows`` (and their codes, and outbox entries when forwarding is on)."""
    if not rows:
        return
    await conn.execute(
        insert(observations),
        [
            {
                "id": r.id,
                "project": r.project,
                "thing_name": r.thing_name,
                "patient_id": r.patient_id,
                "effective_at": r.effective_at,
                "issued_at": r.issued_at,
                "resource": r.resource,
            }
            for r in rows
        ],
    )
    await conn.execute(
        insert(observation_codes),
        [
            {"observation_id": r.id, "position": i, "project": r.project, "system": s, "code": c}
            for r in rows
            for i, (s, c) in enumerate(r.codes)
        ],
    )
    if outbox:
        await conn.execute(
            insert(fhir_outbox),
            [
                {
                    "observation_id": r.id,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "state": "pending",
                    "created_at": now,
                    "updated_at": now,
                }
                for r in rows
            ],
        )


# Multi-row statements (lantern.store.sqlite_rows): statement heads and one row's template.
_INSERT_OBSERVATION = (
    "INSERT INTO observations (id, project, thing_name, patient_id, effective_at, issued_at, "
    "resource) VALUES ",
    "(?,?,?,?,?,?,?)",
)
_INSERT_CODE = (
    "INSERT INTO observation_codes (observation_id, position, project, system, code) VALUES ",
    "(?,?,?,?,?)",
)
_INSERT_OUTBOX = (
    "INSERT INTO fhir_outbox (observation_id, attempts, next_attempt_at, state, created_at, "
    "updated_at) VALUES ",
    "(?,0,?,'pending',?,?)",
)


class SqliteBatchWriter:
    """Writes batches of observations to a SQLite file on a connection of its own (blocking).

    The same statements and transaction as :func:`insert_observations` (one transaction per
    batch, rolled back whole on any error, foreign keys enforced, ``synchronous=FULL``), through
    the ``sqlite3`` driver with multi-row statements (:mod:`lantern.store.sqlite_rows`): no
    per-row SQLAlchemy parameter processing. WAL checkpoints run beside it
    (:mod:`lantern.store.wal_checkpoint`). It is the only writer of these rows; other
    connections take turns through ``busy_timeout`` and ``BEGIN IMMEDIATE``. Used from the
    writer process (:mod:`lantern.store.ingest_process`) or from a thread
    (:class:`SqliteObservationWriter`).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._max_variables = 0  # the connection's parameter limit, read when it opens
        self._checkpointer = WalCheckpointer(path)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # As lantern.store.db does for every connection: durable commits, enforced references.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        # Checkpoints run beside this connection, not inside its commits (store.wal_checkpoint).
        conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES}")
        self._checkpointer.start()
        self._max_variables = variable_limit(conn)
        return conn

    def write(self, rows: Sequence[ObservationRow], outbox: bool, now: float) -> None:
        """Commit ``rows`` in one transaction; raises the driver's error when nothing was stored."""
        if self._conn is None:
            self._conn = self._open()
        conn = self._conn
        observations = [
            (r.id, r.project, r.thing_name, r.patient_id, r.effective_at, r.issued_at, r.resource)
            for r in rows
        ]
        codes = [
            (r.id, i, r.project, system, code)
            for r in rows
            for i, (system, code) in enumerate(r.codes)
        ]
        limit = self._max_variables
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in multirow_inserts(
                *_INSERT_OBSERVATION, observations, max_variables=limit
            ):
                conn.execute(sql, params)
            for sql, params in multirow_inserts(*_INSERT_CODE, codes, max_variables=limit):
                conn.execute(sql, params)
            if outbox:
                pending = [(r.id, now, now, now) for r in rows]
                for sql, params in multirow_inserts(*_INSERT_OUTBOX, pending, max_variables=limit):
                    conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                # The connection is unusable; open a fresh one for the next batch.
                conn.close()
                self._conn = None
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._checkpointer.stop()


class SqliteObservationWriter:
    """A :class:`SqliteBatchWriter` on a dedicated thread of this process: one hop per batch.

    The ``sqlite3`` driver releases the GIL around every statement and must take it back from
    the event loop (see :mod:`lantern.store.ingest_process`, which avoids that); multi-row
    statements keep those hand-overs few.
    """

    def __init__(self, path: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-sqlite")
        self._batches = SqliteBatchWriter(path)

    @staticmethod
    def path_of(db: Database) -> str | None:
        """The file behind ``db`` when it is a SQLite file database, else None."""
        url = db.engine.url
        if not db.is_sqlite or not url.database or url.database == ":memory:":
            return None
        return str(url.database)

    async def start(self) -> None:
        """Nothing to start: the connection opens with the first batch."""

    async def write(self, rows: Sequence[ObservationRow], *, outbox: bool, now: float) -> None:
        """Commit ``rows`` in one transaction; raises the driver's error when nothing was stored."""
        if rows:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._batches.write, rows, outbox, now)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._batches.close)


async def get_observation(
    conn: AsyncConnection, observation_id: str, project: str | None
) -> dict[str, Any] | None:
    """The stored Observation resource, or None (also when it belongs to another project)."""
    q = select(observations.c.resource).where(observations.c.id == observation_id)
    if project is not None:
        q = q.where(observations.c.project == project)
    raw = (await conn.execute(q)).scalar_one_or_none()
    return None if raw is None else dict(json.loads(raw))


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    project: str | None = None
    patient_id: str | None = None
    thing_name: str | None = None
    patient_absent: bool = False  # subject is the Device (no patient given)
    code: tuple[str | None, str] | None = None  # (system or None for any, code)
    date_ge: float | None = None
    date_gt: float | None = None
    date_le: float | None = None
    date_lt: float | None = None
    newest_first: bool = True


def _observation_filter(q: ObservationQuery) -> list[ColumnElement[bool]]:
    o = observations.c
    where: list[ColumnElement[bool]] = []
    if q.project is not None:
        where.append(o.project == q.project)
    if q.patient_id is not None:
        where.append(o.patient_id == q.patient_id)
    if q.thing_name is not None:
        where.append(o.thing_name == q.thing_name)
    if q.patient_absent:
        where.append(o.patient_id.is_(None))
    if q.date_ge is not None:
        where.append(o.effective_at >= q.date_ge)
    if q.date_gt is not None:
        where.append(o.effective_at > q.date_gt)
    if q.date_le is not None:
        where.append(o.effective_at <= q.date_le)
    if q.date_lt is not None:
        where.append(o.effective_at < q.date_lt)
    if q.code is not None:
        system, code = q.code
        c = observation_codes.c
        sub = select(c.observation_id).where(c.code == code)
        if system is not None:
            sub = sub.where(c.system == system)
        if q.project is not None:
            sub = sub.where(c.project == q.project)
        where.append(o.id.in_(sub))
    return where


async def search_observations(
    conn: AsyncConnection, q: ObservationQuery, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of matching Observations (by effective time, then id) and the total match count."""
    where = _observation_filter(q)
    o = observations.c
    order = (o.effective_at.desc(), o.id.desc()) if q.newest_first else (o.effective_at, o.id)
    page = select(o.resource).where(and_(True, *where)).order_by(*order).limit(limit).offset(offset)
    total_q = select(func.count()).select_from(observations).where(and_(True, *where))
    resources = [dict(json.loads(r)) for r in (await conn.execute(page)).scalars()]
    total = int((await conn.execute(total_q)).scalar_one())
    return resources, total


async def count_observations(conn: AsyncConnection, project: str | None = None) -> int:
    q = select(func.count()).select_from(observations)
    if project is not None:
        q = q.where(observations.c.project == project)
    return int((await conn.execute(q)).scalar_one())


# -- FHIR read tokens ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    project: str
    scope: str
    name: str
    created_at: float
    revoked_at: float | None


def _token(row: Any) -> TokenRecord:
    return TokenRecord(row.id, row.project, row.scope, row.name, row.created_at, row.revoked_at)


async def insert_token(
    conn: AsyncConnection,
    *,
    token_id: str,
    project: str,
    scope: str,
    name: str,
    token_hash: str,
    now: float,
) -> None:
    await conn.execute(
        insert(fhir_tokens).values(
            id=token_id,
            project=project,
            scope=scope,
            name=name,
            token_hash=token_hash,
            created_at=now,
        )
    )


async def find_active_token(conn: AsyncConnection, token_hash: str) -> TokenRecord | None:
    t = fhir_tokens.c
    row = (
        await conn.execute(
            select(fhir_tokens).where(t.token_hash == token_hash, t.revoked_at.is_(None))
        )
    ).first()
    return None if row is None else _token(row)


async def list_tokens(conn: AsyncConnection, project: str | None = None) -> list[TokenRecord]:
    q = select(fhir_tokens).order_by(fhir_tokens.c.created_at)
    if project is not None:
        q = q.where(fhir_tokens.c.project == project)
    return [_token(r) for r in (await conn.execute(q)).all()]


async def revoke_token(conn: AsyncConnection, token_id: str, now: float) -> bool:
    """True when an active token was revoked."""
    t = fhir_tokens.c
    result = await conn.execute(
        update(fhir_tokens).where(t.id == token_id, t.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)


# -- upload links and files ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadLink:
    id: str
    project: str
    thing_name: str
    file_name: str
    content_type: str
    object_key: str
    backend: str
    created_at: float
    expires_at: float
    used_at: float | None
    state: str


async def insert_link(conn: AsyncConnection, link: UploadLink) -> None:
    await conn.execute(
        insert(upload_links).values(
            id=link.id,
            project=link.project,
            thing_name=link.thing_name,
            file_name=link.file_name,
            content_type=link.content_type,
            object_key=link.object_key,
            backend=link.backend,
            created_at=link.created_at,
            expires_at=link.expires_at,
            used_at=link.used_at,
            state=link.state,
        )
    )


async def get_link(conn: AsyncConnection, link_id: str) -> UploadLink | None:
    row = (await conn.execute(select(upload_links).where(upload_links.c.id == link_id))).first()
    return None if row is None else UploadLink(**row._asdict())


async def claim_link(conn: AsyncConnection, link_id: str, now: float) -> bool:
    """Mark an unused link as in use; False when it was already used (or is being used)."""
    u = upload_links.c
    result = await conn.execute(
        update(upload_links)
        .where(u.id == link_id, u.used_at.is_(None), u.state == "pending")
        .values(used_at=now)
    )
    return bool(result.rowcount)


async def release_link(conn: AsyncConnection, link_id: str) -> None:
    """Undo :func:`claim_link` after a failed upload, so the device may try again."""
    await conn.execute(
        update(upload_links)
        .where(upload_links.c.id == link_id, upload_links.c.state == "pending")
        .values(used_at=None)
    )


async def set_link_state(conn: AsyncConnection, link_id: str, state: str) -> None:
    await conn.execute(update(upload_links).where(upload_links.c.id == link_id).values(state=state))


async def pending_links(conn: AsyncConnection, backend: str, limit: int = 100) -> list[UploadLink]:
    q = (
        select(upload_links)
        .where(upload_links.c.state == "pending", upload_links.c.backend == backend)
        .order_by(upload_links.c.created_at)
        .limit(limit)
    )
    return [UploadLink(**r._asdict()) for r in (await conn.execute(q)).all()]


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    project: str
    thing_name: str
    file_name: str
    content_type: str
    size: int
    sha256: str
    object_key: str
    backend: str
    created_at: float


async def insert_file(conn: AsyncConnection, record: FileRecord) -> None:
    await conn.execute(
        insert(files).values(
            id=record.id,
            project=record.project,
            thing_name=record.thing_name,
            file_name=record.file_name,
            content_type=record.content_type,
            size=record.size,
            sha256=record.sha256,
            object_key=record.object_key,
            backend=record.backend,
            created_at=record.created_at,
        )
    )


async def get_file(conn: AsyncConnection, file_id: str) -> FileRecord | None:
    row = (await conn.execute(select(files).where(files.c.id == file_id))).first()
    return None if row is None else FileRecord(**row._asdict())


async def list_files(
    conn: AsyncConnection,
    *,
    project: str | None = None,
    thing_name: str | None = None,
    limit: int = 1000,
) -> list[FileRecord]:
    q = select(files).order_by(files.c.created_at.desc()).limit(limit)
    if project is not None:
        q = q.where(files.c.project == project)
    if thing_name is not None:
        q = q.where(files.c.thing_name == thing_name)
    return [FileRecord(**r._asdict()) for r in (await conn.execute(q)).all()]


# -- FHIR forwarding outbox ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    observation_id: str
    attempts: int


async def due_outbox(conn: AsyncConnection, now: float, limit: int) -> list[OutboxEntry]:
    b = fhir_outbox.c
    q = (
        select(b.id, b.observation_id, b.attempts)
        .where(b.state == "pending", b.next_attempt_at <= now)
        .order_by(b.next_attempt_at, b.id)
        .limit(limit)
    )
    return [OutboxEntry(r.id, r.observation_id, r.attempts) for r in (await conn.execute(q))]


async def next_outbox_due(conn: AsyncConnection) -> float | None:
    b = fhir_outbox.c
    q = select(func.min(b.next_attempt_at)).where(b.state == "pending")
    value = (await conn.execute(q)).scalar_one_or_none()
    return None if value is None else float(value)


async def mark_outbox(
    conn: AsyncConnection,
    entry_id: int,
    *,
    state: str,
    attempts: int,
    next_attempt_at: float,
    error: str | None,
    now: float,
) -> None:
    await conn.execute(
        update(fhir_outbox)
        .where(fhir_outbox.c.id == entry_id)
        .values(
            state=state,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=None if error is None else error[:512],
            updated_at=now,
        )
    )


async def outbox_states(conn: AsyncConnection) -> dict[str, int]:
    b = fhir_outbox.c
    rows = (await conn.execute(select(b.state, func.count()).group_by(b.state))).all()
    return {str(state): int(n) for state, n in rows}
