"""Settings of the push service."""

from __future__ import annotations

from lantern.settings.base import SectionModel


class PushSettings(SectionModel):
    """Settings of the push service (filled in by the issue that builds it)."""
