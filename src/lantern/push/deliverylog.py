"""The delivery log: one row per push (no payload), written with group commit.

:class:`DeliveryLog` is a :class:`~lantern.store.group_commit.GroupCommit` of delivery rows:
concurrent pushes share one transaction (up to :data:`BATCH_MAX` rows), so under load one fsync
covers many rows instead of one each, and a lone push waits for its own commit only. The queue
is bounded: when the store falls behind, pushes wait for room instead of growing memory.

:meth:`DeliveryLog.record` returns once the row is committed and raises
:class:`DeliveryNotLogged` when the transaction holding it failed (none of its batch is
stored). The push was already handed to the provider by then, so the dispatcher still answers
with the provider's outcome and says the push was not logged (see
:class:`lantern.push.dispatch.DeliveryOutcome`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from lantern.push.errors import PushError
from lantern.store.group_commit import CommitFailed, GroupCommit
from lantern.store.push import DeliveryRow, DeliveryStore

log = logging.getLogger(__name__)

BATCH_MAX = 1000
QUEUE_MAX = 20_000


class DeliveryNotLogged(PushError):
    """The delivery-log row of a push could not be committed (the push itself went out)."""


def address_hash(key: bytes, scheme: str, address: str) -> str:
    """Keyed hash of an address. Keyed (HMAC) because phone numbers and e-mail addresses are
    guessable: a plain hash of one could be reversed by trying them all."""
    return hmac.new(key, f"{scheme}:{address}".encode(), hashlib.sha256).hexdigest()[:32]


class DeliveryLog:
    """Appends :class:`DeliveryRow` s to the store in group-committed batches."""

    def __init__(
        self, store: DeliveryStore, *, batch_max: int = BATCH_MAX, queue_max: int = QUEUE_MAX
    ) -> None:
        self.store = store
        self.writer: GroupCommit[DeliveryRow, None] = GroupCommit(
            self._commit, name="push-delivery-log", batch_max=batch_max, queue_max=queue_max
        )

    async def _commit(self, rows: list[DeliveryRow]) -> list[None]:
        await self.store.insert_many(rows)
        return [None] * len(rows)

    async def record(self, row: DeliveryRow) -> None:
        """Return once ``row`` is committed; raise :class:`DeliveryNotLogged` if it is not."""
        try:
            await self.writer.submit(row)
        except CommitFailed as exc:
            raise DeliveryNotLogged(f"delivery {row.id} could not be logged") from exc

    async def close(self) -> None:
        """Commit every queued row, then stop (later rows are refused: not logged)."""
        await self.writer.stop()
