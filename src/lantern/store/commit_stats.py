"""Plain-integer histograms of the group-commit writers, read at scrape time.

Every :class:`~lantern.store.group_commit.GroupCommit` records each batch here (its size and
how long its commit took): a few integer adds per batch, nothing per request, no metrics
library on the write path. :func:`writers` lists the live writers; the runtime's collector
(:class:`lantern.runtime.metrics.GroupCommitCollector`) exports them labelled by writer name.
"""

from __future__ import annotations

import weakref
from typing import Protocol

from lantern.stats import Buckets

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "COMMIT_SECONDS_BUCKETS",
    "Buckets",
    "CommitStats",
    "Writer",
    "register",
    "writers",
]

BATCH_SIZE_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)
COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class CommitStats:
    """One writer's batches: sizes, commit durations, failed batches."""

    __slots__ = ("batch_sizes", "commit_seconds", "failed_batches")

    def __init__(self) -> None:
        self.batch_sizes = Buckets(BATCH_SIZE_BUCKETS)
        self.commit_seconds = Buckets(COMMIT_SECONDS_BUCKETS)
        self.failed_batches = 0


class Writer(Protocol):
    name: str
    stats: CommitStats

    @property
    def queued(self) -> int: ...


_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()


def register(writer: Writer) -> None:
    """Make ``writer`` visible to :func:`writers` for as long as it lives."""
    _WRITERS.add(writer)


def writers() -> list[Writer]:
    """The live group-commit writers of this process."""
    return list(_WRITERS)
