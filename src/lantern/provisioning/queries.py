"""The read side of fleet provisioning, shared by the HTTP API and the command line: claims (with
how many things each registered), templates, things and certificates.

Reads run on a connection of the async engine, off the writer that commits provisioning requests,
each a fixed number of statements whatever the number of rows listed (the device counts of all
claims are one grouped join, not a count per claim). The records are the store's, re-exported
here so callers need not import the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.engine import Connection

from lantern.store import Database
from lantern.store.registry import (
    CERTIFICATE_STATUSES,
    CertificateRecord,
    ClaimRecord,
    ClaimSummary,
    TemplateRecord,
    ThingRecord,
    access,
    claims,
    devices,
)

__all__ = [
    "CERTIFICATE_STATUSES",
    "THING_BATCH",
    "CertificateRecord",
    "ClaimRecord",
    "ClaimSummary",
    "RegistryQueries",
    "TemplateRecord",
    "ThingDetail",
    "ThingRecord",
]

T = TypeVar("T")

THING_BATCH = 1000  # things per statement when every thing is read


@dataclass(frozen=True, slots=True)
class ThingDetail:
    """A thing and its certificates (oldest first)."""

    thing: ThingRecord
    certificates: list[CertificateRecord]


class RegistryQueries:
    """Read-only questions about claims, templates, things and certificates. ``project=None``
    means every project."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        async with self.db.connect() as conn:
            return await conn.run_sync(fn)

    # -- claims ---------------------------------------------------------------------------------
    async def claims(self, project: str | None = None) -> list[ClaimSummary]:
        """Claims, oldest first, with their device counts (one statement)."""
        return await self._read(lambda c: claims.claim_summaries(c, project))

    async def claim(self, claim_id: str) -> ClaimSummary | None:
        found = await self._read(lambda c: claims.claim_summaries(c, None, claim_id))
        return found[0] if found else None

    # -- templates ------------------------------------------------------------------------------
    async def templates(self, project: str | None = None) -> list[TemplateRecord]:
        return await self._read(lambda c: claims.list_templates_sync(c, project))

    async def template(self, name: str) -> TemplateRecord | None:
        return await self._read(lambda c: claims.get_template_sync(c, name))

    # -- things ---------------------------------------------------------------------------------
    async def things(self, project: str | None = None) -> list[ThingRecord]:
        """Every thing, by name, however many: read in keyset pages of :data:`THING_BATCH`
        (a screen or a command that shows the whole fleet; an API pages with
        :meth:`things_page`)."""
        found: list[ThingRecord] = []
        after: str | None = None
        while True:
            batch = await self.things_page(after, THING_BATCH, project=project)
            found.extend(batch)
            if len(batch) < THING_BATCH:
                return found
            after = batch[-1].name

    async def things_page(
        self, after: str | None, limit: int, *, project: str | None = None
    ) -> list[ThingRecord]:
        """At most ``limit`` things by name whose names sort after ``after`` (keyset paging:
        a thing created or deleted meanwhile never shifts a page)."""
        return await self._read(
            lambda c: devices.list_things_sync(c, project, limit=limit, after=after)
        )

    async def thing_count(
        self, project: str | None = None, *, created_since: float | None = None
    ) -> int:
        """How many things (created at or after ``created_since``): a count, not a read."""
        return await self._read(
            lambda c: devices.count_things_sync(c, project, created_since=created_since)
        )

    async def thing(self, name: str) -> ThingDetail | None:
        def read(conn: Connection) -> ThingDetail | None:
            thing = devices.get_thing_sync(conn, name)
            if thing is None:
                return None
            return ThingDetail(thing, devices.list_certificates_sync(conn, None, thing_name=name))

        return await self._read(read)

    # -- certificates ---------------------------------------------------------------------------
    async def certificates(
        self, *, thing: str | None = None, status: str | None = None
    ) -> list[CertificateRecord]:
        """Every certificate of every project, oldest first (only ``thing``'s, only
        ``status``), however many: read in keyset pages of :data:`THING_BATCH`."""
        found: list[CertificateRecord] = []
        after: tuple[float, str] | None = None
        while True:
            batch = await self.certificates_page(
                after, THING_BATCH, ascending=True, thing=thing, status=status
            )
            found.extend(batch)
            if len(batch) < THING_BATCH:
                return found
            after = (batch[-1].created_at, batch[-1].id)

    async def certificates_page(
        self,
        after: tuple[float, str] | None,
        limit: int,
        *,
        ascending: bool,
        thing: str | None = None,
        status: str | None = None,
    ) -> list[CertificateRecord]:
        """At most ``limit`` certificates by (creation time, id) after ``after`` (only
        ``thing``'s, only ``status``)."""
        return await self._read(
            lambda c: devices.certificates_page_sync(
                c, after, limit, ascending=ascending, thing_name=thing, status=status
            )
        )

    async def certificate_policy_names(self, certificate_id: str) -> list[str]:
        """The policies attached to a certificate, by name."""
        return await self._read(lambda c: access.certificate_policy_names_sync(c, certificate_id))
