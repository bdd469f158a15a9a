"""Project-scoped FHIR read tokens (``lantern tokens create --project P --scope fhir:read``).

A token is ``lft_<id>_<secret>``; only the SHA-256 of the whole token is stored, so a leaked
database does not leak usable tokens. The secret has 256 random bits, which is why a fast hash is
enough. Lookup is by hash (an index probe), so no comparison of secrets happens in Python.

Creating and revoking are recorded in the audit log (``token.create``, ``token.revoke``) in the
transaction of the change; the token itself never is.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from lantern.audit import AuditedAction, audited
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
    async with audited(db, "token.create", project=project, scope=scope, name=name) as act:
        return await _create_token(db, act, project=project, scope=scope, name=name)


async def _create_token(
    db: Database, act: AuditedAction, *, project: str, scope: str, name: str
) -> IssuedToken:
    if scope not in SCOPES:
        raise TokenError(f"unknown scope {scope!r}; known scopes: {', '.join(SCOPES)}")
    token_id = secrets.token_hex(8)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = time.time()
    async with db.transaction() as conn:
        if not await repo.project_exists(conn, project):
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
        act.target = token_id
        await act.record(conn)
    record = repo.TokenRecord(token_id, project, scope, name, now, None)
    return IssuedToken(record=record, token=token)


async def revoke_token(db: Database, token_id: str) -> None:
    """Revoke a token (requests using it get 401 from then on); raises :class:`TokenError`
    when there is no active token ``token_id``. Audited as ``token.revoke``."""
    async with audited(db, "token.revoke", token_id) as act, db.transaction() as conn:
        if not await repo.revoke_token(conn, token_id, time.time()):
            raise TokenError(f"no active token {token_id!r}; see `lantern tokens list`")
        await act.record(conn)


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
