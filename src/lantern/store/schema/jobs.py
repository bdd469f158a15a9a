"""Firmware catalog, thing groups, jobs (deployments) and job executions (Alembic branch ``jobs``).

One deployment is one job. Each targeted thing has one execution row; its ``status`` is an AWS
execution status, or ``PLANNED`` while the rollout has not yet queued it (a device never sees a
PLANNED execution). ``version_number`` is the optimistic-concurrency counter devices see as
``versionNumber``: every change is an ``UPDATE ... WHERE version_number = <read>``.

``job_thing_notify`` remembers, per thing, what the last ``notify``/``notify-next`` told it
(pending job ids and head), so a notification is sent exactly when that changes, whichever
process changed the executions; ``dirty`` marks things whose executions changed outside the
server (CLI) for the server's timer loop to evaluate.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from lantern.store.schema.base import metadata

__all__ = [
    "firmware",
    "job_executions",
    "job_thing_notify",
    "jobs",
    "thing_group_members",
    "thing_groups",
]

firmware = Table(
    "firmware",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("object_key", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project", "name", "version", name="uq_firmware_project_name_version"),
)

thing_groups = Table(
    "thing_groups",
    metadata,
    Column("project", String(64), ForeignKey("projects.name"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("description", String(500), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

thing_group_members = Table(
    "thing_group_members",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("group_name", String(128), primary_key=True),
    Column(
        "thing_name",
        String(128),
        ForeignKey("things.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("added_at", Float, nullable=False),
    ForeignKeyConstraint(
        ["project", "group_name"],
        ["thing_groups.project", "thing_groups.name"],
        ondelete="CASCADE",
        name="fk_thing_group_members_group",
    ),
)
Index("ix_thing_group_members_thing_name", thing_group_members.c.thing_name)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column(
        "firmware_id",
        String(40),
        ForeignKey("firmware.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("document", JSON, nullable=False),
    Column("status", String(24), nullable=False),  # IN_PROGRESS | COMPLETED | CANCELED
    Column("target_kind", String(8), nullable=False),  # things | group | all
    Column("target_group", String(128), nullable=True),
    Column("max_per_minute", Integer, nullable=True),
    Column("in_progress_timeout_minutes", Integer, nullable=True),
    Column(
        "abort_criteria", JSON, nullable=True
    ),  # list of {failureType, thresholdPercentage, ...}
    Column("force_canceled", Boolean, nullable=False, default=False),
    Column("reason", String(256), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("rollout_started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    # Generic jobs (jobs_0002): "firmware" (a deployment) or "generic" (any JSON document).
    Column("kind", String(16), nullable=False, default="firmware", server_default="firmware"),
    Column("description", String(2028), nullable=True),
    Column(
        "target_selection",
        String(16),
        nullable=False,
        default="SNAPSHOT",
        server_default="SNAPSHOT",
    ),
    Column("targets", JSON, nullable=True),  # {"things": [...], "groups": [...]}
    # rollout (exponentialRate), retry criteria, presigned URL expiry, reasonCode, documentSource
    Column("options", JSON, nullable=True),
    Column("comment", String(2028), nullable=True),
)
Index("ix_jobs_status", jobs.c.status)
Index("ix_jobs_kind", jobs.c.kind)
Index("ix_jobs_firmware_id", jobs.c.firmware_id)

job_executions = Table(
    "job_executions",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    Column(
        "thing_name",
        String(128),
        ForeignKey("things.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, nullable=False),  # rollout order within the job
    Column("status", String(16), nullable=False),
    Column("status_details", JSON, nullable=False),
    Column("version_number", BigInteger, nullable=False),
    Column("execution_number", BigInteger, nullable=False),
    Column("queued_at", Float, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("last_updated_at", Float, nullable=False),
    Column("in_progress_deadline", Float, nullable=True),
    Column("step_deadline", Float, nullable=True),
    # Retries used (jobExecutionsRetryConfig), per failure type (jobs_0002).
    Column("retries_failed", Integer, nullable=False, default=0, server_default="0"),
    Column("retries_timed_out", Integer, nullable=False, default=0, server_default="0"),
)
Index("ix_job_executions_thing_status", job_executions.c.thing_name, job_executions.c.status)
Index("ix_job_executions_job_status", job_executions.c.job_id, job_executions.c.status)

job_thing_notify = Table(
    "job_thing_notify",
    metadata,
    Column(
        "thing_name",
        String(128),
        ForeignKey("things.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("pending_key", Text, nullable=False),
    Column("head_job_id", String(64), nullable=True),
    Column("dirty", Boolean, nullable=False),
)
Index("ix_job_thing_notify_dirty", job_thing_notify.c.dirty)
