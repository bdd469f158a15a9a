"""iam: access keys of the AWS IoT compatible control plane (secrets sealed, never in clear).

Revision ID: iam_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "iam_0001"
down_revision = None
branch_labels = ("iam",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "access_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
        sa.UniqueConstraint("name", name="uq_access_keys_name"),
    )


def downgrade() -> None:
    op.drop_table("access_keys")
