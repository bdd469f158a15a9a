"""Storage: the relational schema and repositories (SQLite or PostgreSQL through SQLAlchemy's
async engine, migrated with Alembic) and object storage for files.

Knows nothing of MQTT or HTTP. Each domain keeps its tables in ``lantern.store.schema.<domain>``
on the shared :data:`lantern.store.schema.base.metadata`, its Alembic revisions on its own branch
in ``lantern/store/migrations/versions``, and its repository in ``lantern.store.<domain>``.
"""

from __future__ import annotations

from lantern.store.db import Database, StoreError

__all__ = ["Database", "StoreError"]
