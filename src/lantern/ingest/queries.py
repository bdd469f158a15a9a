"""The read side of the ingest service, shared by the HTTP API (``/fhir``, ``/files``) and the
command line (``lantern tokens``, ``lantern files``): observations, devices, files and tokens.

Each function reads on one connection of the async engine (off the observation writer). The
records are the store's, re-exported here so callers need not import the store.
"""

from __future__ import annotations

from typing import Any

from lantern.store import Database, registry
from lantern.store import ingest as repo
from lantern.store.ingest import FileRecord, ObservationQuery, TokenRecord
from lantern.store.registry import ThingRecord

__all__ = [
    "FileRecord",
    "ObservationQuery",
    "ThingRecord",
    "TokenRecord",
    "count_files",
    "files_page",
    "get_file",
    "get_observation",
    "get_thing",
    "list_files",
    "list_things",
    "list_tokens",
    "search_observations",
]


async def get_observation(
    db: Database, observation_id: str, project: str | None
) -> dict[str, Any] | None:
    """The stored Observation resource, or None (also when it belongs to another project)."""
    async with db.connect() as conn:
        return await repo.get_observation(conn, observation_id, project)


async def search_observations(
    db: Database, query: ObservationQuery, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of matching Observations and the total number of matches."""
    async with db.connect() as conn:
        return await repo.search_observations(conn, query, limit=limit, offset=offset)


async def get_thing(db: Database, name: str) -> ThingRecord | None:
    """The thing (FHIR Device) ``name``, or None."""
    async with db.connect() as conn:
        return await registry.get_thing(conn, name)


async def list_things(db: Database, project: str | None, *, limit: int) -> list[ThingRecord]:
    """Things of ``project`` (every project when None), in name order, at most ``limit``."""
    async with db.connect() as conn:
        return await registry.list_things(conn, project, limit=limit)


async def get_file(db: Database, file_id: str) -> FileRecord | None:
    async with db.connect() as conn:
        return await repo.get_file(conn, file_id)


FILE_BATCH = 1000  # files per statement when every file is read


async def list_files(
    db: Database, *, project: str | None = None, thing_name: str | None = None
) -> list[FileRecord]:
    """Every uploaded file, newest first, however many (read in keyset batches)."""
    found: list[FileRecord] = []
    before: tuple[float, str] | None = None
    while True:
        batch = await files_page(
            db, before=before, limit=FILE_BATCH, project=project, thing_name=thing_name
        )
        found.extend(batch)
        if len(batch) < FILE_BATCH:
            return found
        before = (batch[-1].created_at, batch[-1].id)


async def files_page(
    db: Database,
    *,
    before: tuple[float, str] | None,
    limit: int,
    project: str | None = None,
    thing_name: str | None = None,
) -> list[FileRecord]:
    """At most ``limit`` files, newest first, older than the (creation time, id) ``before``."""
    async with db.connect() as conn:
        return await repo.list_files(
            conn, project=project, thing_name=thing_name, limit=limit, before=before
        )


async def count_files(
    db: Database, *, project: str | None = None, thing_name: str | None = None
) -> int:
    """How many files (of ``project``, of ``thing_name``): a count, not a read."""
    async with db.connect() as conn:
        return await repo.count_files(conn, project=project, thing_name=thing_name)


async def list_tokens(db: Database, project: str | None = None) -> list[TokenRecord]:
    """FHIR read tokens (never their secrets), oldest first."""
    async with db.connect() as conn:
        return await repo.list_tokens(conn, project)
