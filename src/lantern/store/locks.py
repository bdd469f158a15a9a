"""PostgreSQL advisory lock keys: one 64-bit key per name, the same on every node.

Names are hashed (SHA-256, first 8 bytes, signed) so a key never collides with another
application's small integers by accident, and every node computes the same key for a name.
"""

from __future__ import annotations

import hashlib

__all__ = ["MIGRATIONS", "advisory_key"]


def advisory_key(name: str) -> int:
    """The ``bigint`` advisory lock key of ``name``."""
    digest = hashlib.sha256(f"lantern:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


#: Held (transaction-level) while migrations run: nodes starting at once migrate one at a time.
MIGRATIONS = advisory_key("migrations")
