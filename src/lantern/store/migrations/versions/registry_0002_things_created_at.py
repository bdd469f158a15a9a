"""registry: index things.created_at (the gateway polls for things created since a time).

Revision ID: registry_0002
"""

from __future__ import annotations

from alembic import op

revision = "registry_0002"
down_revision = "registry_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_things_created_at", "things", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_things_created_at", "things")
