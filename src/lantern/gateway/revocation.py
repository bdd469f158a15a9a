"""Closing live connections of certificates that stop being valid.

Certificates are deactivated or revoked from anywhere (the CLI in another process, the HTTP API,
a claim revocation), so the gateway watches the registry: every ``interval`` seconds (<= 1 s) it
reads the certificates that changed to INACTIVE or REVOKED recently and closes their
connections with DISCONNECT 0x98 (administrative action). In-process callers can also call
:meth:`RevocationWatcher.kick` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Protocol

from lantern.gateway.identity import ClaimIdentity, ThingIdentity
from lantern.mqtt.hooks import ClientHandle
from lantern.mqtt.reason_codes import ReasonCode
from lantern.store import Database
from lantern.store.registry import RegistryStore, RegistryUnits

__all__ = ["ClientDisconnector", "RevocationWatcher"]

log = logging.getLogger(__name__)

# Changes older than this are not looked at again (they were handled on an earlier pass).
_WINDOW = 10.0


class ClientDisconnector(Protocol):
    def disconnect_clients(
        self, predicate: Callable[[ClientHandle], bool], reason_code: ReasonCode
    ) -> int: ...


def _certificate_of(client: ClientHandle) -> str | None:
    identity = client.identity
    if isinstance(identity, ClaimIdentity | ThingIdentity):
        return identity.certificate_id
    return None


class RevocationWatcher:
    """Polls the registry (``units``; by default the database's
    :class:`~lantern.store.registry.RegistryStore`) and kicks connections of deactivated/revoked
    certificates."""

    def __init__(
        self,
        db: Database,
        server: ClientDisconnector,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        units: RegistryUnits | None = None,
    ) -> None:
        self.db = db
        self.units = units if units is not None else RegistryStore(db.transactions)
        self.server = server
        self.interval = interval
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def kick(self, certificate_ids: Collection[str]) -> int:
        """Close every connection using one of ``certificate_ids``; returns how many."""
        ids = set(certificate_ids)
        if not ids:
            return 0
        count = self.server.disconnect_clients(
            lambda c: _certificate_of(c) in ids, ReasonCode.ADMINISTRATIVE_ACTION
        )
        if count:
            log.info("closed %d connections of deactivated or revoked certificates", count)
        return count

    async def poll_once(self) -> int:
        since = self.clock() - _WINDOW
        ids = await self.units.read(lambda uow: uow.disabled_certificates_since(since))
        return self.kick(ids)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                log.exception("revocation check failed; retrying")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
