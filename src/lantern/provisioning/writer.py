"""The registry writes of the Identity API by group commit: the requests of many devices in one
transaction, each answered only after the transaction holding it has committed.

:class:`RegistryWriter` is a :class:`~lantern.store.group_commit.GroupCommit` (bounded queue with
backpressure, one transaction per batch; see its contract) over the store's
:class:`~lantern.store.registry.RegistryUnits`. A request is a function of a
:class:`~lantern.store.registry.RegistryUnitOfWork` doing its checks and writes; each runs in a
SAVEPOINT of the batch's transaction (:meth:`RegistryUnits.write_each`), so one that raises (a
rejection, a conflict) is rolled back alone and gets its exception, exactly as if it had had a
transaction of its own. Checks run inside the transaction, so they are exact: a claim revoked or
a token used a moment ago is seen. If the batch cannot commit, nothing of it is stored and every
caller gets :class:`~lantern.store.group_commit.CommitFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from lantern.store.group_commit import GroupCommit
from lantern.store.registry import RegistryUnitOfWork, RegistryUnits

__all__ = ["RegistryWriter"]

T = TypeVar("T")
Request = Callable[[RegistryUnitOfWork], Any]


class RegistryWriter:
    """Runs registry write requests by group commit (module docstring). Starts on first use;
    :meth:`close` commits what is queued and stops."""

    def __init__(self, units: RegistryUnits, *, batch_max: int = 256, queue_max: int = 4096):
        self._units = units
        self._group: GroupCommit[Request, Any] = GroupCommit(
            self._commit, name="registry-writes", batch_max=batch_max, queue_max=queue_max
        )

    @property
    def batches(self) -> int:
        """Committed transactions (for tests and metrics)."""
        return self._group.batches

    async def write(self, request: Callable[[RegistryUnitOfWork], T]) -> T:
        """``request``'s result once committed; its exception (nothing of it stored) else."""
        return cast(T, await self._group.submit(request))

    async def close(self) -> None:
        await self._group.stop()

    async def _commit(self, batch: list[Request]) -> Sequence[Any | BaseException]:
        return await self._units.write_each(batch)
