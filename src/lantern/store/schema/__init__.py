"""The relational schema as SQLAlchemy Core tables, one module per domain.

Import a domain's tables from its module; :data:`metadata` holds them all.
"""

from __future__ import annotations

from lantern.store.schema.base import metadata
from lantern.store.schema.core import projects

__all__ = ["metadata", "projects"]
