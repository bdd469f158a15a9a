"""registry: things.version (AWS's thing version, for DescribeThing and expectedVersion).

Revision ID: registry_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0003"
down_revision = "registry_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("things", sa.Column("version", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("things") as batch:
        batch.drop_column("version")
