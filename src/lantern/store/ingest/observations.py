"""Observations: the batch insert (observations, their codes, outbox entries) and the reads.

Each statement is SQLAlchemy Core, written once. The batch insert exists in three forms, all
generated from these tables: row tuples in column order (:data:`OBSERVATION_COLUMNS` …, which the
SQLite writer's multi-row statements take, see :mod:`lantern.store.sqlite.observations`), one
``INSERT … SELECT unnest(…)`` per table on PostgreSQL (a whole batch in three statements, arrays
as parameters), and a plain executemany elsewhere (in-memory SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Float,
    Insert,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from lantern.store.ingest.records import ObservationQuery, ObservationRow
from lantern.store.schema.ingest import fhir_outbox, observation_codes, observations

__all__ = [
    "CODE_COLUMNS",
    "OBSERVATION_COLUMNS",
    "OUTBOX_COLUMNS",
    "code_tuples",
    "count_observations",
    "get_observation",
    "insert_observations_sync",
    "observation_tuples",
    "outbox_tuples",
    "search_observations",
]

# Column order of the row tuples below (the tables' own order).
OBSERVATION_COLUMNS = (
    "id",
    "project",
    "thing_name",
    "patient_id",
    "effective_at",
    "issued_at",
    "resource",
)
CODE_COLUMNS = ("observation_id", "position", "project", "system", "code")
OUTBOX_COLUMNS = (
    "observation_id",
    "attempts",
    "next_attempt_at",
    "state",
    "created_at",
    "updated_at",
)


def observation_tuples(rows: Sequence[ObservationRow]) -> list[tuple[Any, ...]]:
    return [
        (r.id, r.project, r.thing_name, r.patient_id, r.effective_at, r.issued_at, r.resource)
        for r in rows
    ]


def code_tuples(rows: Sequence[ObservationRow]) -> list[tuple[Any, ...]]:
    return [
        (r.id, i, r.project, system, code) for r in rows for i, (system, code) in enumerate(r.codes)
    ]


def outbox_tuples(rows: Sequence[ObservationRow], now: float) -> list[tuple[Any, ...]]:
    """A pending delivery per observation, due now."""
    return [(r.id, 0, now, "pending", now, now) for r in rows]


def _unnest_insert(table: Table, columns: Sequence[str]) -> Insert:
    """``INSERT INTO table (columns) SELECT unnest(:c1), unnest(:c2), …``: one array parameter
    per column (PostgreSQL runs set-returning functions of one select list in lockstep)."""
    arrays = [func.unnest(bindparam(name, type_=ARRAY(table.c[name].type))) for name in columns]
    return insert(table).from_select(list(columns), select(*arrays))


_PG_OBSERVATIONS = _unnest_insert(observations, OBSERVATION_COLUMNS)
_PG_CODES = _unnest_insert(observation_codes, CODE_COLUMNS)
_PG_OUTBOX = insert(fhir_outbox).from_select(
    list(OUTBOX_COLUMNS),
    select(
        func.unnest(bindparam("observation_id", type_=ARRAY(fhir_outbox.c.observation_id.type))),
        literal(0),
        bindparam("now", type_=Float),
        literal("pending"),
        bindparam("now", type_=Float),
        bindparam("now", type_=Float),
    ),
)


def _columns(names: Sequence[str], tuples: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {name: [t[i] for t in tuples] for i, name in enumerate(names)}


def insert_observations_sync(
    conn: Connection, rows: Sequence[ObservationRow], *, outbox: bool, now: float
) -> None:
    """Insert ``rows``, their codes and (``outbox``) outbox entries in ``conn``'s transaction."""
    if not rows:
        return
    obs, codes = observation_tuples(rows), code_tuples(rows)
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_OBSERVATIONS, _columns(OBSERVATION_COLUMNS, obs))
        if codes:
            conn.execute(_PG_CODES, _columns(CODE_COLUMNS, codes))
        if outbox:
            conn.execute(_PG_OUTBOX, {"observation_id": [r.id for r in rows], "now": now})
        return
    conn.execute(
        insert(observations), [dict(zip(OBSERVATION_COLUMNS, t, strict=True)) for t in obs]
    )
    if codes:
        conn.execute(
            insert(observation_codes), [dict(zip(CODE_COLUMNS, t, strict=True)) for t in codes]
        )
    if outbox:
        conn.execute(
            insert(fhir_outbox),
            [dict(zip(OUTBOX_COLUMNS, t, strict=True)) for t in outbox_tuples(rows, now)],
        )


async def get_observation(
    conn: AsyncConnection, observation_id: str, project: str | None
) -> dict[str, Any] | None:
    """The stored Observation resource, or None (also when it belongs to another project)."""
    q = select(observations.c.resource).where(observations.c.id == observation_id)
    if project is not None:
        q = q.where(observations.c.project == project)
    raw = (await conn.execute(q)).scalar_one_or_none()
    return None if raw is None else dict(json.loads(raw))


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
