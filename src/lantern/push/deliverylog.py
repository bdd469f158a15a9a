"""The delivery log: one row per push (no payload), written with group commit.

Concurrent pushes share one transaction: :meth:`DeliveryLog.record` queues the row and waits for
the batch it joined to commit, so under load one fsync covers many rows instead of one each.

No timer: while one batch commits (on SQLite, one hop to the store's writer thread, which
inserts and fsyncs without holding the event loop), the rows of the pushes finishing meanwhile
queue up and form the next batch. A lone push waits for its own commit only; under load a batch
grows to match the commit latency. ``linger`` (default 0) adds a wait before each batch, for
deployments that prefer fewer, larger transactions to the lowest latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging

from lantern.store.push import DeliveryRow, DeliveryStore

log = logging.getLogger(__name__)

MAX_BATCH = 1000


def address_hash(key: bytes, scheme: str, address: str) -> str:
    """Keyed hash of an address. Keyed (HMAC) because phone numbers and e-mail addresses are
    guessable: a plain hash of one could be reversed by trying them all."""
    return hmac.new(key, f"{scheme}:{address}".encode(), hashlib.sha256).hexdigest()[:32]


class DeliveryLog:
    """Appends :class:`DeliveryRow` s to the store in batches; :meth:`close` drains."""

    def __init__(self, store: DeliveryStore, *, linger: float = 0.0) -> None:
        self.store = store
        self.linger = linger
        self._pending: list[tuple[DeliveryRow, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, row: DeliveryRow) -> None:
        """Return once ``row`` is committed. A failing write is logged, not raised: the
        notification was already handed to the provider and the caller must learn that."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="push-delivery-log")
        await asyncio.shield(future)

    async def _write_all(self) -> None:
        while self._pending:
            # sleep(0) still lets the pushes that are ready in this loop turn join the batch.
            await asyncio.sleep(self.linger)
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self.store.insert_many([row for row, _ in batch])
            except Exception:
                # Only ids and counts: rows carry no payload, but keep the message minimal.
                log.exception("could not write %d delivery-log rows", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        """Wait until every queued row is written."""
        while self._writer is not None and not self._writer.done():
            await self._writer
        await self.store.close()
