"""The shadow service: reads, and changes by group commit (each answered once committed).

:class:`ShadowService` runs updates and deletes through one
:class:`~lantern.store.group_commit.GroupCommit` over the store port
(:class:`~lantern.store.shadows.ShadowUnits`): many changes per transaction, applied in arrival
order, each with exactly the checks of a transaction of its own (read, check ``version``, merge,
compare-and-swap). Of updates racing with the same ``version`` exactly one wins; the others see
the winner's version (409). A refused change writes nothing and does not disturb the others; a
batch that cannot commit is answered 500 for each of its changes, and nothing of it is stored.

What an accepted change broadcasts (``update/delta``, ``update/documents``, ``delete/accepted``)
is built by :meth:`ShadowService.broadcasts` and sent through the gateway's notifier, whether the
change came over MQTT or HTTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from lantern.errors import LanternError
from lantern.gateway.router import Notifier
from lantern.shadows import messages
from lantern.shadows.batch import (
    Change,
    Delete,
    Deleted,
    Update,
    Updated,
    apply_batch,
    missing,
)
from lantern.shadows.document import CLASSIC, Shadow, UpdateRequest, from_stored
from lantern.shadows.errors import ShadowError, internal, thing_not_found
from lantern.store.group_commit import CommitFailed, GroupCommit
from lantern.store.shadows import ShadowUnitOfWork, ShadowUnits

__all__ = ["Deleted", "ShadowService", "Updated", "topic_prefix"]

log = logging.getLogger(__name__)


def topic_prefix(thing: str, shadow: str) -> str:
    """``$aws/things/<thing>/shadow`` or ``.../shadow/name/<shadow>``."""
    base = f"$aws/things/{thing}/shadow"
    return base if shadow == CLASSIC else f"{base}/name/{shadow}"


class ShadowService:
    """Shadows of things. Starts writing on first use; :meth:`close` at the end.

    ``pipeline`` > 1 hands the next batch to the store while one commits: only for stores that
    run units of work one after the other in the order given (a SQLite writer thread); with
    concurrent transactions (PostgreSQL) two batches creating one shadow would collide."""

    def __init__(
        self,
        units: ShadowUnits,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        *,
        batch_max: int = 512,
        queue_max: int = 10_000,
        pipeline: int = 1,
    ) -> None:
        self._units = units
        self._notifier = notifier
        self._clock = clock
        self._closing = False
        self._writer: GroupCommit[Change, Updated | Deleted] = GroupCommit(
            self._commit,
            name="shadow-updates",
            batch_max=batch_max,
            queue_max=queue_max,
            pipeline=pipeline,
        )

    @property
    def batches(self) -> int:
        """Committed transactions (for tests and metrics)."""
        return self._writer.batches

    def now(self) -> int:
        """The time in whole seconds, as every shadow timestamp."""
        return int(self._clock())

    async def close(self) -> None:
        """Apply what is queued, then stop (later changes are refused with 500)."""
        self._closing = True
        await self._writer.stop()

    # -- reads -----------------------------------------------------------------------------------
    async def get(self, thing: str, shadow: str) -> Shadow:
        """The shadow; 404 if it does not exist (or its thing does not)."""

        def read(uow: ShadowUnitOfWork) -> Shadow | ShadowError:
            found = uow.get(thing, shadow)
            if found is not None and found.document is not None:
                return from_stored(found.version, found.document)
            if found is None and not uow.thing_exists(thing):
                return thing_not_found()
            return missing(thing, shadow)

        result = await self._units.read(read)
        if isinstance(result, ShadowError):
            raise result
        return result

    async def named_shadows(self, thing: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` names of the thing's named shadows after ``after``; 404 if no thing."""

        def read(uow: ShadowUnitOfWork) -> list[str] | None:
            if not uow.thing_exists(thing):
                return None
            return uow.named_shadows(thing, after, limit)

        names = await self._units.read(read)
        if names is None:
            raise thing_not_found()
        return names

    # -- changes ---------------------------------------------------------------------------------
    async def update(self, thing: str, shadow: str, request: UpdateRequest) -> Updated:
        """Apply ``request``; returns once committed, raises :class:`ShadowError` otherwise."""
        outcome = await self._submit(Update(thing, shadow, request))
        assert isinstance(outcome, Updated)
        return outcome

    async def delete(self, thing: str, shadow: str, version: int | None = None) -> Deleted:
        """Delete the shadow (409 if ``version`` is given and not current, 404 if none)."""
        outcome = await self._submit(Delete(thing, shadow, version))
        assert isinstance(outcome, Deleted)
        return outcome

    def broadcasts(
        self,
        thing: str,
        shadow: str,
        outcome: Updated | Deleted,
        token: str | None,
        timestamp: int,
    ) -> list[tuple[str, bytes]]:
        """The messages every subscriber gets for an accepted change, in order."""
        prefix = topic_prefix(thing, shadow)
        if isinstance(outcome, Deleted):
            payload = messages.delete_accepted(outcome.version, token, timestamp)
            return [(f"{prefix}/delete/accepted", messages.encode(payload))]
        out: list[tuple[str, bytes]] = []
        delta = messages.delta_message(outcome.current, token, timestamp)
        if delta is not None and outcome.sent_desired:
            out.append((f"{prefix}/update/delta", messages.encode(delta)))
        documents = messages.documents_message(outcome.previous, outcome.current, token, timestamp)
        out.append((f"{prefix}/update/documents", messages.encode(documents)))
        return out

    def publish(self, messages_: Sequence[tuple[str, bytes]]) -> None:
        """Send broadcasts to subscribers (nothing without a notifier). The change is committed
        already: a broadcast that cannot be sent is logged, not raised."""
        if self._notifier is None:
            return
        for topic, payload in messages_:
            try:
                self._notifier.publish(topic, payload, qos=1)
            except LanternError as exc:
                log.warning("shadow broadcast on %s not sent: %s", topic, exc)

    async def _submit(self, change: Change) -> Updated | Deleted:
        if self._closing:
            raise internal()
        try:
            # A waiter cancelled (connection gone) is still applied: the device may retry it.
            return await self._writer.submit(change)
        except CommitFailed:
            raise internal() from None  # logged by the GroupCommit

    async def _commit(self, batch: list[Change]) -> Sequence[Updated | Deleted | BaseException]:
        now = self._clock()
        return await self._units.write(lambda uow: apply_batch(uow, batch, now))
