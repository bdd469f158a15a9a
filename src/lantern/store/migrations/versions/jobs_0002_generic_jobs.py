"""jobs: generic jobs (any JSON document) beside firmware deployments — the job's kind,
targets, target selection, rollout/retry/presigned-URL settings, cancel reason code and comment,
and per-execution retry counters.

Revision ID: jobs_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "jobs_0002"
down_revision = "jobs_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="firmware")
        )
        batch.add_column(sa.Column("description", sa.String(2028), nullable=True))
        batch.add_column(
            sa.Column("target_selection", sa.String(16), nullable=False, server_default="SNAPSHOT")
        )
        batch.add_column(sa.Column("targets", sa.JSON, nullable=True))
        batch.add_column(sa.Column("options", sa.JSON, nullable=True))
        batch.add_column(sa.Column("comment", sa.String(2028), nullable=True))
    op.create_index("ix_jobs_kind", "jobs", ["kind"])
    with op.batch_alter_table("job_executions") as batch:
        for name in ("retries_failed", "retries_timed_out"):
            batch.add_column(sa.Column(name, sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("job_executions") as batch:
        batch.drop_column("retries_timed_out")
        batch.drop_column("retries_failed")
    op.drop_index("ix_jobs_kind", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for name in ("comment", "options", "targets", "target_selection", "description", "kind"):
            batch.drop_column(name)
