"""Access keys of the AWS IoT compatible control plane (Alembic branch ``iam``).

SigV4 needs the secret itself at verification time, so it cannot be hashed: ``secret_sealed``
holds it sealed with AES-GCM under a key that is not in the database (``lantern.iam.secretbox``).
A dump of the database alone does not reveal any secret.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table, Text

from lantern.store.schema.base import metadata

__all__ = ["access_keys"]

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # the AccessKeyId
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | operator | readonly
    Column("secret_sealed", Text, nullable=False),  # "<box version>:<base64 nonce+ciphertext>"
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
)
