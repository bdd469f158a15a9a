"""jobs: firmware catalog, thing groups, jobs (deployments), job executions, notify state.

Revision ID: jobs_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "jobs_0001"
down_revision = None
branch_labels = ("jobs",)
depends_on = ("core_0001", "registry_0001")


def upgrade() -> None:
    op.create_table(
        "firmware",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_firmware_project_projects"),
            nullable=False,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("project", "name", "version", name="uq_firmware_project_name_version"),
    )
    op.create_table(
        "thing_groups",
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_thing_groups_project_projects"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "thing_group_members",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column(
            "thing_name",
            sa.String(128),
            sa.ForeignKey(
                "things.name", ondelete="CASCADE", name="fk_thing_group_members_thing_name_things"
            ),
            primary_key=True,
        ),
        sa.Column("added_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["project", "group_name"],
            ["thing_groups.project", "thing_groups.name"],
            ondelete="CASCADE",
            name="fk_thing_group_members_group",
        ),
    )
    op.create_index("ix_thing_group_members_thing_name", "thing_group_members", ["thing_name"])
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_jobs_project_projects"),
            nullable=False,
        ),
        sa.Column(
            "firmware_id",
            sa.String(40),
            sa.ForeignKey("firmware.id", ondelete="SET NULL", name="fk_jobs_firmware_id_firmware"),
            nullable=True,
        ),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("target_kind", sa.String(8), nullable=False),
        sa.Column("target_group", sa.String(128), nullable=True),
        sa.Column("max_per_minute", sa.Integer, nullable=True),
        sa.Column("in_progress_timeout_minutes", sa.Integer, nullable=True),
        sa.Column("abort_criteria", sa.JSON, nullable=True),
        sa.Column("force_canceled", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("rollout_started_at", sa.Float, nullable=True),
        sa.Column("completed_at", sa.Float, nullable=True),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_firmware_id", "jobs", ["firmware_id"])
    op.create_table(
        "job_executions",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.job_id", ondelete="CASCADE", name="fk_job_executions_job_id_jobs"),
            primary_key=True,
        ),
        sa.Column(
            "thing_name",
            sa.String(128),
            sa.ForeignKey(
                "things.name", ondelete="CASCADE", name="fk_job_executions_thing_name_things"
            ),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_details", sa.JSON, nullable=False),
        sa.Column("version_number", sa.BigInteger, nullable=False),
        sa.Column("execution_number", sa.BigInteger, nullable=False),
        sa.Column("queued_at", sa.Float, nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("last_updated_at", sa.Float, nullable=False),
        sa.Column("in_progress_deadline", sa.Float, nullable=True),
        sa.Column("step_deadline", sa.Float, nullable=True),
    )
    op.create_index("ix_job_executions_thing_status", "job_executions", ["thing_name", "status"])
    op.create_index("ix_job_executions_job_status", "job_executions", ["job_id", "status"])
    op.create_table(
        "job_thing_notify",
        sa.Column(
            "thing_name",
            sa.String(128),
            sa.ForeignKey(
                "things.name", ondelete="CASCADE", name="fk_job_thing_notify_thing_name_things"
            ),
            primary_key=True,
        ),
        sa.Column("pending_key", sa.Text, nullable=False),
        sa.Column("head_job_id", sa.String(64), nullable=True),
        sa.Column("dirty", sa.Boolean, nullable=False),
    )
    op.create_index("ix_job_thing_notify_dirty", "job_thing_notify", ["dirty"])


def downgrade() -> None:
    op.drop_table("job_thing_notify")
    op.drop_table("job_executions")
    op.drop_table("jobs")
    op.drop_table("thing_group_members")
    op.drop_table("thing_groups")
    op.drop_table("firmware")
