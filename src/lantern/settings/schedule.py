"""Settings of the schedule service (scheduled notifications, issue 7)."""

from __future__ import annotations

from pydantic import Field

from lantern.settings.base import SectionModel


class ScheduleSettings(SectionModel):
    """How the scheduler loop runs. Env: ``LANTERN_SCHEDULE__<KEY>``."""

    enabled: bool = Field(
        default=True,
        description="Run the scheduler loop in this process (the /schedules API is always on). "
        "Several processes may run it against one database: occurrences are claimed atomically.",
    )
    tick_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Longest sleep between two looks for due occurrences.",
    )
    misfire_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        description="An occurrence found late by at most this much (after downtime) still fires; "
        "later ones are skipped and recorded as 'missed'.",
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Due occurrences claimed per database transaction.",
    )
    concurrency: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Deliveries in flight at once per scheduler process.",
    )
    claim_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a claimed occurrence belongs to the scheduler that claimed it; "
        "renewed every third of this while it works on it. If that process dies, another takes "
        "the unsent destinations over after this.",
    )
    missed_record_limit: int = Field(
        default=24,
        ge=1,
        description="At most this many missed occurrences are recorded per schedule after a "
        "long downtime; the count of the rest goes into the last record's detail.",
    )
