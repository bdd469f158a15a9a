"""Scheduled notifications (Alembic branch ``schedule``).

``schedules`` holds the rule and the next instant it fires (``next_fire_at``, NULL when paused,
finished or stopped: the due query is one index range scan). ``schedule_occurrences`` is the
history and the claim: the unique ``(schedule_id, scheduled_at)`` row is inserted by exactly one
scheduler. ``schedule_deliveries`` records each destination's result of an occurrence, so a
scheduler that takes over an interrupted occurrence sends only to destinations without one.
History never holds message content: only times, statuses and provider reasons.

``key_id`` is the owning API key's public id (``api_keys.id`` of the push branch) kept as a plain
column, not a foreign key, so this branch depends only on ``core_0001``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lantern.store.schema.base import metadata

__all__ = ["schedule_deliveries", "schedule_destinations", "schedule_occurrences", "schedules"]

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("activity_id", String(128), nullable=False),
    Column("participant_id", String(128), nullable=False),
    Column("title", String(256), nullable=False),
    Column("message", Text, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("start_at", BigInteger, nullable=False),  # epoch seconds, UTC
    Column("end_at", BigInteger, nullable=True),
    Column("cron", String(128), nullable=True),
    Column("repeat", String(16), nullable=True),
    Column("times", String(512), nullable=True),  # "HH:MM,HH:MM" local times of day
    Column("state", String(16), nullable=False),  # active|paused|finished|stopped
    Column("next_fire_at", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_schedules_next_fire_at", schedules.c.next_fire_at)
Index("ix_schedules_key_id", schedules.c.key_id)

schedule_destinations = Table(
    "schedule_destinations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "schedule_id",
        String(32),
        ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("token", Text, nullable=False),  # "<scheme>:<address>"; never logged
    Column("active", Boolean, nullable=False),
    Column("deactivated_at", Float, nullable=True),
    Column("deactivated_reason", String(128), nullable=True),
    UniqueConstraint("schedule_id", "position", name="uq_schedule_destinations_position"),
)

schedule_occurrences = Table(
    "schedule_occurrences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "schedule_id",
        String(32),
        ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scheduled_at", BigInteger, nullable=False),
    # claimed (in flight) | fired | partial | failed | missed | skipped
    Column("status", String(16), nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("fired_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("detail", String(256), nullable=True),
    UniqueConstraint("schedule_id", "scheduled_at", name="uq_schedule_occurrences_slot"),
)
Index("ix_schedule_occurrences_status_lease", schedule_occurrences.c.status, "lease_until")

schedule_deliveries = Table(
    "schedule_deliveries",
    metadata,
    Column(
        "occurrence_id",
        Integer,
        ForeignKey("schedule_occurrences.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "destination_id",
        Integer,
        ForeignKey("schedule_destinations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", String(24), nullable=False),
    Column("reason", String(128), nullable=True),
    Column("delivery_id", String(64), nullable=True),
    Column("at", Float, nullable=False),
)
