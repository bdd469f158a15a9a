"""ingest: observations and their codes, FHIR read tokens, upload links, files, FHIR outbox.

Revision ID: ingest_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ingest_0001"
down_revision = None
branch_labels = ("ingest",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_observations_project_projects"),
            nullable=False,
        ),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("effective_at", sa.Float, nullable=False),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_observations_project_effective", "observations", ["project", "effective_at"]
    )
    op.create_index(
        "ix_observations_thing_effective", "observations", ["project", "thing_name", "effective_at"]
    )
    op.create_index(
        "ix_observations_patient_effective",
        "observations",
        ["project", "patient_id", "effective_at"],
    )
    op.create_table(
        "observation_codes",
        sa.Column(
            "observation_id",
            sa.String(64),
            sa.ForeignKey(
                "observations.id",
                ondelete="CASCADE",
                name="fk_observation_codes_observation_id_observations",
            ),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("system", sa.String(512), nullable=False),
        sa.Column("code", sa.String(256), nullable=False),
    )
    op.create_index(
        "ix_observation_codes_lookup", "observation_codes", ["project", "system", "code"]
    )
    op.create_table(
        "fhir_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_fhir_tokens_project_projects"),
            nullable=False,
        ),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_fhir_tokens_token_hash"),
    )
    op.create_table(
        "upload_links",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_upload_links_project_projects"),
            nullable=False,
        ),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("backend", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_upload_links_state", "upload_links", ["state", "expires_at"])
    op.create_table(
        "files",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "project",
            sa.String(64),
            sa.ForeignKey("projects.name", name="fk_files_project_projects"),
            nullable=False,
        ),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("backend", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_files_thing", "files", ["project", "thing_name", "created_at"])
    op.create_table(
        "fhir_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("observation_id", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.String(512), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_fhir_outbox_due", "fhir_outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("fhir_outbox")
    op.drop_table("files")
    op.drop_table("upload_links")
    op.drop_table("fhir_tokens")
    op.drop_table("observation_codes")
    op.drop_table("observations")
