"""shadows: device shadows (classic and named), one row per shadow of a thing.

Revision ID: shadows_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "shadows_0001"
down_revision = None
branch_labels = ("shadows",)
depends_on = ("registry_0001",)


def upgrade() -> None:
    op.create_table(
        "shadows",
        sa.Column(
            "thing_name",
            sa.String(128),
            sa.ForeignKey("things.name", ondelete="CASCADE", name="fk_shadows_thing_name_things"),
            primary_key=True,
        ),
        sa.Column("shadow_name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shadows")
