"""Settings of the schedule service."""

from __future__ import annotations

from lantern.settings.base import SectionModel


class ScheduleSettings(SectionModel):
    """Settings of the schedule service (filled in by the issue that builds it)."""
