"""Device shadows (Alembic branch ``shadows``).

One row per shadow of a thing: ``shadow_name`` is ``""`` for the classic shadow. ``document``
is the JSON text of the state sections and their metadata; a deleted shadow keeps its row with
``deleted = 1`` and its last ``version`` (a shadow created again under that name continues the
version, as AWS does). Rows go with their thing (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Integer, String, Table, Text

from lantern.store.schema.base import metadata

__all__ = ["shadows"]

shadows = Table(
    "shadows",
    metadata,
    Column(
        "thing_name",
        String(128),
        ForeignKey("things.name", ondelete="CASCADE", name="fk_shadows_thing_name_things"),
        primary_key=True,
    ),
    Column("shadow_name", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("document", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
