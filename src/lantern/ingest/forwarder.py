"""Forwarding stored Observations to an external FHIR server through the durable outbox.

The group-commit writer inserts an outbox row in the same transaction as each observation, so a
crash never loses a forward. :class:`FhirForwarder` sends due rows as
``PUT <base>/Observation/<id>``
(idempotent: a retry after a lost response does not create a duplicate), retries network errors,
408, 429 and 5xx with exponential backoff (capped at 10 minutes), and gives up after
``max_attempts`` or on another 4xx (the row is kept with state ``failed`` and the last error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx

from lantern.store import Database
from lantern.store import ingest as repo

log = logging.getLogger(__name__)

MAX_BACKOFF = 600.0
BATCH = 50


class FhirForwarder:
    """Delivers outbox rows; :meth:`run_once` for tests, :meth:`start`/:meth:`stop` for serve."""

    def __init__(
        self,
        db: Database,
        *,
        base_url: str,
        token: str | None,
        max_attempts: int,
        retry_seconds: float,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        idle_seconds: float = MAX_BACKOFF,
    ) -> None:
        """``idle_seconds``: the longest wait between passes. A lone server is poked by its own
        commits; in a cluster, rows committed on other nodes are found by polling this often."""
        self._db = db
        self._idle = idle_seconds
        self._base = base_url.rstrip("/")
        self._token = token
        self._max_attempts = max_attempts
        self._retry = retry_seconds
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._owns_client = client is None
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """New rows were committed: look for due work now."""
        self._wake.set()

    async def _send(self, observation_id: str) -> tuple[bool, bool, str | None]:
        """(delivered, retryable, error)."""
        async with self._db.connect() as conn:
            resource = await repo.get_observation(conn, observation_id, None)
        if resource is None:
            return False, False, "the observation no longer exists"
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = await self._client.put(
                f"{self._base}/Observation/{observation_id}", json=resource, headers=headers
            )
        except httpx.HTTPError as exc:
            return False, True, f"network error: {type(exc).__name__}"
        if response.is_success:
            return True, False, None
        retryable = response.status_code in (408, 429) or response.status_code >= 500
        return False, retryable, f"HTTP {response.status_code}"

    async def run_once(self) -> int:
        """Attempt every due row once; returns how many were delivered."""
        delivered = 0
        async with self._db.connect() as conn:
            due = await repo.due_outbox(conn, self._clock(), BATCH)
        for entry in due:
            ok, retryable, error = await self._send(entry.observation_id)
            attempts = entry.attempts + 1
            now = self._clock()
            if ok:
                state, next_at = "delivered", now
                delivered += 1
            elif retryable and attempts < self._max_attempts:
                state = "pending"
                next_at = now + min(MAX_BACKOFF, self._retry * 2 ** (attempts - 1))
            else:
                state, next_at = "failed", now
                log.warning("giving up forwarding observation %s: %s", entry.observation_id, error)
            async with self._db.transaction() as conn:
                await repo.mark_outbox(
                    conn,
                    entry.id,
                    state=state,
                    attempts=attempts,
                    next_attempt_at=next_at,
                    error=error,
                    now=now,
                )
        return delivered

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                async with self._db.connect() as conn:
                    next_due = await repo.next_outbox_due(conn)
            except Exception as exc:
                log.error("FHIR forwarding pass failed: %s", type(exc).__name__)
                next_due = self._clock() + self._retry
            delay = self._idle if next_due is None else max(0.0, next_due - self._clock())
            delay = min(delay, self._idle)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Forward until ``stop`` is set (a cluster runs this on one node at a time)."""
        task = asyncio.create_task(self._loop(), name="fhir-forwarder")
        try:
            await stop.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="fhir-forwarder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client:
            await self._client.aclose()
