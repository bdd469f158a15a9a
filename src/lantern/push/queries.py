"""The read side of the app gateway, shared by the HTTP API and the command line: API keys
(never their secrets) and the delivery log (never payloads).

The records are the store's, re-exported here so callers need not import the store.
"""

from __future__ import annotations

from lantern.store import Database
from lantern.store.push import ApiKeyRow, ApiKeyStore, DeliveryRow, DeliveryStore

__all__ = ["ApiKeyRow", "DeliveryRow", "PushQueries"]


class PushQueries:
    """Read-only questions about API keys and deliveries."""

    def __init__(self, db: Database) -> None:
        self._keys = ApiKeyStore(db)
        self._deliveries = DeliveryStore(db)

    async def api_keys(self, *, source: str | None = None) -> list[ApiKeyRow]:
        """Every key ever created (revoked ones included), oldest first."""
        return await self._keys.all(source=source)

    async def deliveries(
        self, *, limit: int = 50, key_id: str | None = None, status: str | None = None
    ) -> list[DeliveryRow]:
        """The newest ``limit`` deliveries, newest first, optionally of one key or status."""
        return await self._deliveries.recent(limit=limit, key_id=key_id, status=status)

    async def delivery_outcomes(self, since: float) -> dict[str, int]:
        """Deliveries logged at or after ``since``, counted by status."""
        return await self._deliveries.status_counts(since)
