"""cluster: shared encrypted platform material and the node registry.

Revision ID: cluster_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cluster_0001"
down_revision = None
branch_labels = ("cluster",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kdf", sa.String(64), nullable=False),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "cluster_nodes",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("mqtt_address", sa.String(255), nullable=False),
        sa.Column("http_address", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("connections", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_nodes")
    op.drop_table("cluster_secrets")
