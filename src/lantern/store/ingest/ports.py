"""The port the ingest service writes observations through (no database knowledge here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lantern.store.ingest.records import ObservationRow

__all__ = ["ObservationSink"]


class ObservationSink(Protocol):
    """Stores batches of observations, one transaction each (see :mod:`.sink`)."""

    @property
    def pipeline(self) -> int:
        """How many batches may be handed to :meth:`write` at once."""
        ...

    async def start(self) -> None:
        """Get ready (e.g. start a writer process) before the first batch."""
        ...

    async def write(self, rows: Sequence[ObservationRow], *, outbox: bool, now: float) -> None:
        """Commit ``rows`` (their codes, and outbox entries when ``outbox``) in one transaction;
        return once committed, raise when nothing of them was stored."""
        ...

    async def close(self) -> None:
        """Finish the batches handed over, then release what the sink holds."""
        ...
