"""schedule: schedules, their destinations, occurrences (history and claims), deliveries.

Revision ID: schedule_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "schedule_0001"
down_revision = None
branch_labels = ("schedule",)
# The owning key id is a plain column (no FK to the push branch's api_keys).
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("activity_id", sa.String(128), nullable=False),
        sa.Column("participant_id", sa.String(128), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_at", sa.BigInteger, nullable=False),
        sa.Column("end_at", sa.BigInteger, nullable=True),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("repeat", sa.String(16), nullable=True),
        sa.Column("times", sa.String(512), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("next_fire_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_schedules_next_fire_at", "schedules", ["next_fire_at"])
    op.create_index("ix_schedules_key_id", "schedules", ["key_id"])
    op.create_table(
        "schedule_destinations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "schedule_id",
            sa.String(32),
            sa.ForeignKey(
                "schedules.id",
                ondelete="CASCADE",
                name="fk_schedule_destinations_schedule_id_schedules",
            ),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("deactivated_at", sa.Float, nullable=True),
        sa.Column("deactivated_reason", sa.String(128), nullable=True),
        sa.UniqueConstraint("schedule_id", "position", name="uq_schedule_destinations_position"),
    )
    op.create_table(
        "schedule_occurrences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "schedule_id",
            sa.String(32),
            sa.ForeignKey(
                "schedules.id",
                ondelete="CASCADE",
                name="fk_schedule_occurrences_schedule_id_schedules",
            ),
            nullable=False,
        ),
        sa.Column("scheduled_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("fired_at", sa.Float, nullable=True),
        sa.Column("completed_at", sa.Float, nullable=True),
        sa.Column("detail", sa.String(256), nullable=True),
        sa.UniqueConstraint("schedule_id", "scheduled_at", name="uq_schedule_occurrences_slot"),
    )
    op.create_index(
        "ix_schedule_occurrences_status_lease",
        "schedule_occurrences",
        ["status", "lease_until"],
    )
    op.create_table(
        "schedule_deliveries",
        sa.Column(
            "occurrence_id",
            sa.Integer,
            sa.ForeignKey(
                "schedule_occurrences.id",
                ondelete="CASCADE",
                name="fk_schedule_deliveries_occurrence_id_schedule_occurrences",
            ),
            primary_key=True,
        ),
        sa.Column(
            "destination_id",
            sa.Integer,
            sa.ForeignKey(
                "schedule_destinations.id",
                ondelete="CASCADE",
                name="fk_schedule_deliveries_destination_id_schedule_destinations",
            ),
            primary_key=True,
        ),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("delivery_id", sa.String(64), nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedule_deliveries")
    op.drop_table("schedule_occurrences")
    op.drop_table("schedule_destinations")
    op.drop_index("ix_schedules_key_id", table_name="schedules")
    op.drop_index("ix_schedules_next_fire_at", table_name="schedules")
    op.drop_table("schedules")
