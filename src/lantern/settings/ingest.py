"""Settings of the ingest service."""

from __future__ import annotations

from lantern.settings.base import SectionModel


class IngestSettings(SectionModel):
    """Settings of the ingest service (filled in by the issue that builds it)."""
