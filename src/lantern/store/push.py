"""Repositories of the app gateway: API key rows and delivery-log rows.

Plain data in, plain data out: this module knows nothing of secrets (it stores and finds
hashes) nor of providers. Payload contents never reach it: a delivery row has no field for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.engine import RowMapping

from lantern.store.db import Database, InTransaction, StoreError
from lantern.store.schema.push import api_keys, push_deliveries
from lantern.store.sqlite.connection import raw_connection
from lantern.store.sqlite.rows import insert_template, multirow_inserts, variable_limit


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """One stored API key (the hash of its secret, never the secret)."""

    id: str
    name: str
    scope: str
    secret_hash: str
    rate_per_minute: int | None
    created_at: float
    revoked_at: float | None
    revoke_note: str | None
    replaced_by: str | None
    source: str

    def active_at(self, now: float) -> bool:
        """Valid at ``now``: never revoked, or revocation scheduled later (rotation grace)."""
        return self.revoked_at is None or self.revoked_at > now


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery attempt as the log keeps it: no payload, only a hash of the address."""

    id: str
    key_id: str | None
    scheme: str
    address_hash: str
    status: str
    http_status: int
    reason: str | None
    attempts: int
    latency_ms: float
    created_at: float


_KEY_FIELDS = tuple(f.name for f in fields(ApiKeyRow))
_DELIVERY_FIELDS = tuple(f.name for f in fields(DeliveryRow))
# The SQLite fast path's multi-row INSERT, compiled once from the Core statement.
_INSERT_DELIVERY_SQLITE = insert_template(push_deliveries, _DELIVERY_FIELDS)


def _row_values(row: DeliveryRow) -> tuple[object, ...]:
    """``row``'s values in column order (dataclasses.astuple would deep-copy)."""
    return tuple(getattr(row, name) for name in _DELIVERY_FIELDS)


def _key(row: RowMapping) -> ApiKeyRow:
    return ApiKeyRow(**{name: row[name] for name in _KEY_FIELDS})


def _delivery(row: RowMapping) -> DeliveryRow:
    return DeliveryRow(**{name: row[name] for name in _DELIVERY_FIELDS})


class ApiKeyStore:
    """CRUD on ``api_keys``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, row: ApiKeyRow, *, also: InTransaction | None = None) -> None:
        """Insert ``row`` (and run ``also`` in the same transaction); raises
        :class:`StoreError` if the id or secret hash exists."""
        values = {name: getattr(row, name) for name in _KEY_FIELDS}
        async with self.db.transaction() as conn:
            try:
                await conn.execute(insert(api_keys).values(**values))
            except Exception as exc:  # IntegrityError differs per driver
                raise StoreError(f"cannot store API key {row.id}: it already exists") from exc
            if also is not None:
                await also(conn)

    async def by_hash(self, secret_hash: str) -> ApiKeyRow | None:
        async with self.db.connect() as conn:
            result = await conn.execute(
                select(api_keys).where(api_keys.c.secret_hash == secret_hash)
            )
            row = result.mappings().first()
        return _key(row) if row is not None else None

    async def by_id(self, key_id: str) -> ApiKeyRow | None:
        async with self.db.connect() as conn:
            result = await conn.execute(select(api_keys).where(api_keys.c.id == key_id))
            row = result.mappings().first()
        return _key(row) if row is not None else None

    async def all(self, *, source: str | None = None) -> list[ApiKeyRow]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if source is not None:
            query = query.where(api_keys.c.source == source)
        async with self.db.connect() as conn:
            result = await conn.execute(query)
            return [_key(r) for r in result.mappings()]

    async def revoke(
        self,
        key_id: str,
        at: float,
        note: str | None,
        replaced_by: str | None = None,
        *,
        also: InTransaction | None = None,
    ) -> bool:
        """Set the revocation time (kept forever); False if the key is unknown or already revoked
        at an earlier time (a revocation is never postponed). ``also`` runs in the same
        transaction when the key was revoked."""
        values: dict[str, object] = {"revoked_at": at, "revoke_note": note}
        if replaced_by is not None:
            values["replaced_by"] = replaced_by
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .where((api_keys.c.revoked_at.is_(None)) | (api_keys.c.revoked_at > at))
                .values(**values)
            )
            if result.rowcount and also is not None:
                await also(conn)
            return bool(result.rowcount)


def append_deliveries(conn: Connection, rows: Sequence[DeliveryRow]) -> None:
    """Append ``rows`` in the caller's transaction (a whole group-commit batch)."""
    if not rows:
        return
    raw = raw_connection(conn)
    if raw is not None:
        # The hot path (a row per push): multi-row statements straight to the driver (no
        # per-row binding by SQLAlchemy, few GIL hand-overs: lantern.store.sqlite.rows).
        tuples = [_row_values(r) for r in rows]
        limit = variable_limit(raw)
        for sql, params in multirow_inserts(*_INSERT_DELIVERY_SQLITE, tuples, max_variables=limit):
            raw.execute(sql, params)
    else:
        values = [{name: getattr(r, name) for name in _DELIVERY_FIELDS} for r in rows]
        conn.execute(insert(push_deliveries), values)


class DeliveryStore:
    """Append and read the delivery log. Appends are units of work of
    :attr:`Database.transactions` (on a SQLite file: one hop to its writer thread per batch)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_many(self, rows: Sequence[DeliveryRow]) -> None:
        """Append ``rows`` in one transaction (one commit for a whole batch); raises
        :class:`StoreError` (the driver's error chained) with none of them stored when the
        transaction fails."""
        if not rows:
            return
        try:
            await self.db.transactions.write(lambda conn: append_deliveries(conn, rows))
        except Exception as exc:  # IntegrityError, OperationalError … differ per driver
            raise StoreError(f"cannot append {len(rows)} delivery-log rows") from exc

    async def recent(
        self,
        *,
        limit: int = 50,
        key_id: str | None = None,
        status: str | None = None,
    ) -> list[DeliveryRow]:
        """The newest ``limit`` rows, newest first, optionally filtered."""
        query = select(push_deliveries).order_by(push_deliveries.c.created_at.desc()).limit(limit)
        if key_id is not None:
            query = query.where(push_deliveries.c.key_id == key_id)
        if status is not None:
            query = query.where(push_deliveries.c.status == status)
        async with self.db.connect() as conn:
            result = await conn.execute(query)
            return [_delivery(r) for r in result.mappings()]

    async def status_counts(self, since: float) -> dict[str, int]:
        """How many deliveries of each status were logged at or after ``since`` (one grouped
        count on the created_at index, however many rows)."""
        query = (
            select(push_deliveries.c.status, func.count())
            .where(push_deliveries.c.created_at >= since)
            .group_by(push_deliveries.c.status)
        )
        async with self.db.connect() as conn:
            result = await conn.execute(query)
            return {str(status): int(count) for status, count in result.all()}


__all__ = [
    "ApiKeyRow",
    "ApiKeyStore",
    "DeliveryRow",
    "DeliveryStore",
    "StoreError",
    "append_deliveries",
]
