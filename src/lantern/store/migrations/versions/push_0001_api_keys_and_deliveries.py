"""push: API keys (hashed secrets, scopes, revocation) and the delivery log.

Revision ID: push_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "push_0001"
down_revision = None
branch_labels = ("push",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("rate_per_minute", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("revoke_note", sa.Text, nullable=True),
        sa.Column("replaced_by", sa.String(32), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_table(
        "push_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_push_deliveries_created_at", "push_deliveries", ["created_at"])
    op.create_index("ix_push_deliveries_key_id", "push_deliveries", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_push_deliveries_key_id", "push_deliveries")
    op.drop_index("ix_push_deliveries_created_at", "push_deliveries")
    op.drop_table("push_deliveries")
    op.drop_table("api_keys")
