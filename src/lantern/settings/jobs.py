"""Settings of the jobs service."""

from __future__ import annotations

from lantern.settings.base import SectionModel


class JobsSettings(SectionModel):
    """Settings of the jobs service (filled in by the issue that builds it)."""
