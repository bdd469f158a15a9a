"""operators: console operator accounts and their sessions.

Revision ID: operators_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "operators_0001"
down_revision = None
branch_labels = ("operators",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("disabled_at", sa.Float, nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("remote", sa.String(64), nullable=True),
    )
    op.create_index("ix_console_sessions_operator", "console_sessions", ["operator"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_operator", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("operators")
