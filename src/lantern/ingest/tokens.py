"""Project-scoped FHIR read tokens (``lantern tokens create --project P --scope fhir:read``).

A token is ``lft_<id>_<secret>``; only the SHA-256 of the whole token is stored, so a leaked
database does not leak usable tokens. The secret has 256 random bits, which is why a fast hash is
enough. Lookup is by hash (an index probe), so no comparison of secrets happens in Python.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from lantern.ingest.errors import TokenError
from lantern.store import Database
from lantern.store import ingest as repo

SCOPES = ("fhir:read",)
TOKEN_PREFIX = "lft_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: repo.TokenRecord
    token: str  # shown once


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(db: Database, *, project: str, scope: str, name: str) -> IssuedToken:
    """Create a token; raises :class:`TokenError` for an unknown scope or project."""
    if scope not in SCOPES:
        raise TokenError(f"unknown scope {scope!r}; known scopes: {', '.join(SCOPES)}")
    from sqlalchemy import select

    from lantern.store.schema.core import projects

    token_id = secrets.token_hex(8)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = time.time()
    async with db.transaction() as conn:
        exists = (
            await conn.execute(select(projects.c.name).where(projects.c.name == project))
        ).first()
        if exists is None:
            raise TokenError(f"there is no project {project!r}")
        await repo.insert_token(
            conn,
            token_id=token_id,
            project=project,
            scope=scope,
            name=name,
            token_hash=hash_token(token),
            now=now,
        )
    record = repo.TokenRecord(token_id, project, scope, name, now, None)
    return IssuedToken(record=record, token=token)


async def authenticate(db: Database, token: str, scope: str) -> repo.TokenRecord:
    """The active token record for ``token`` holding ``scope``; raises :class:`TokenError`."""
    if not token.startswith(TOKEN_PREFIX):
        raise TokenError("unknown token")
    async with db.connect() as conn:
        record = await repo.find_active_token(conn, hash_token(token))
    if record is None:
        raise TokenError("unknown or revoked token")
    if record.scope != scope:
        raise TokenError(f"the token lacks the scope {scope}")
    return record
