"""One-time downloads of a secret made for one session: a new claim's zip (certificate, private
key, CA). The bytes live in this process's memory only, for at most ``ttl`` seconds, and are
handed out once, to the session that made them; nothing is written to disk or the database."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Pickup", "PickupStore"]


@dataclass(frozen=True, slots=True)
class Pickup:
    session: str  # the id hash of the session that may take it
    filename: str
    body: bytes
    expires: float


class PickupStore:
    def __init__(
        self, ttl: float = 600.0, limit: int = 100, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._items: dict[str, Pickup] = {}

    def put(self, session: str, filename: str, body: bytes) -> str:
        """Keep ``body`` for ``session``; returns the token of its download link."""
        now = self.clock()
        self._items = {k: v for k, v in self._items.items() if v.expires > now}
        while len(self._items) >= self.limit:
            self._items.pop(next(iter(self._items)))
        token = secrets.token_urlsafe(24)
        self._items[token] = Pickup(session, filename, body, now + self.ttl)
        return token

    def take(self, token: str, session: str) -> Pickup | None:
        """The item (removed) when ``token`` is live and ``session``'s; None otherwise."""
        item = self._items.get(token)
        if item is None or item.session != session or item.expires <= self.clock():
            return None
        del self._items[token]
        return item
