"""API keys: creation (printed once), hashed storage, constant-time checks, revocation, rotation.

A key is ``lk_`` plus 43 URL-safe characters (256 random bits). Only ``sha256:<hex>`` of it is
stored. A fast hash is the right tool here, unlike for passwords: the secret has at least 96
(seed-style ``openssl rand -base64 12`` keys) and normally 256 bits of entropy, so guessing a
preimage is infeasible however fast the hash is, while a deliberately slow KDF (bcrypt, argon2)
would add tens of milliseconds and a CPU-exhaustion lever to every ``/push``. The lookup goes by
hash, so comparison time does not depend on how much of a guessed secret is right, and the final
equality check uses :func:`hmac.compare_digest`.

Revocation keeps the row (time and note). Rotation issues a new key and schedules the old key's
revocation after an optional grace period (``revoked_at`` in the future).

Creation, revocation and rotation are recorded in the audit log (``apikey.create``,
``apikey.revoke``, ``apikey.rotate``) in the transaction of the change, by the current actor,
with the key ids, name, scope and rate: never the secret, its hash or the revocation note.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lantern.audit import AuditedAction, audited
from lantern.push.errors import PushError
from lantern.push.scopes import Scope, parse_scope, schemes_allowed
from lantern.store import Database, StoreError
from lantern.store.push import ApiKeyRow, ApiKeyStore

KEY_PREFIX = "lk_"
_SECRET_BYTES = 32
# Running servers cache successful lookups this long; a revocation made by another process (the
# CLI) takes effect within this time, one made through this service at once.
DEFAULT_CACHE_SECONDS = 1.0


class KeyNotFound(PushError):
    """No API key has this id."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An authenticated caller: the public key id (never the secret), name, scope and rate."""

    id: str
    name: str
    scope: Scope
    rate_per_minute: int | None


def hash_secret(secret: str) -> str:
    """The stored form of ``secret`` (see the module docstring for why sha256 suffices)."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh API key secret with 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def _new_id() -> str:
    return "key_" + secrets.token_hex(8)


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id, name=row.name, scope=parse_scope(row.scope), rate_per_minute=row.rate_per_minute
    )


class KeyService:
    """Create, check, revoke and rotate API keys stored in ``db``."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        self.store = ApiKeyStore(db)
        self._clock = clock
        self._cache_seconds = cache_seconds
        # secret hash -> (row, cached until). Only hits are cached: misses always ask the store.
        self._cache: dict[str, tuple[ApiKeyRow, ApiKey, float]] = {}
        # secret hash -> the store lookup in progress. Concurrent requests with the same key
        # share it, so a cache expiry under load costs one query, not one per waiting request.
        self._lookups: dict[str, asyncio.Future[ApiKeyRow | None]] = {}
        self._revocations = 0  # a lookup that raced a revocation must not cache its old row

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The key whose secret is ``secret``, or None when unknown or revoked."""
        if not secret or len(secret) > 256:
            return None
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[2] > now:
            row, key = cached[0], cached[1]
        else:
            found = await self._lookup(digest)
            if found is None:
                return None
            row, key = found, _api_key(found)
        if not hmac.compare_digest(row.secret_hash.encode(), digest.encode()):
            return None
        if not row.active_at(now):
            return None
        return key

    async def _lookup(self, digest: str) -> ApiKeyRow | None:
        """The stored row for ``digest`` (one query for all concurrent callers), cached."""
        pending = self._lookups.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKeyRow | None] = asyncio.get_running_loop().create_future()
        self._lookups[digest] = future
        revocations = self._revocations
        try:
            found = await self.store.by_hash(digest)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else PushError("lookup aborted"))
            future.exception()  # the waiters re-raise it; do not warn about it twice
            raise
        finally:
            self._lookups.pop(digest, None)
        if found is None:
            self._cache.pop(digest, None)
        elif revocations == self._revocations:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (found, _api_key(found), self._clock() + self._cache_seconds)
        future.set_result(found)
        return found

    async def create(
        self,
        name: str,
        scope: Scope,
        *,
        rate_per_minute: int | None = None,
        source: str = "cli",
        secret: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Store a new key; returns it and its secret (show the secret once, then forget it).

        ``secret`` is only given when importing an existing key (``API_KEYS``).
        """
        async with audited(
            self.store.db,
            "apikey.create",
            name=name,
            scope=scope,
            rate_per_minute=rate_per_minute,
            source=source,
        ) as act:
            return await self._create(
                name, scope, rate_per_minute=rate_per_minute, source=source, secret=secret, act=act
            )

    async def _create(
        self,
        name: str,
        scope: Scope,
        *,
        rate_per_minute: int | None,
        source: str,
        secret: str | None = None,
        act: AuditedAction | None = None,
    ) -> tuple[ApiKey, str]:
        """:meth:`create`; the entry of ``act`` (if any) is written with the row."""
        schemes_allowed(scope)  # KeyError-free validation of the scope literal
        if not name or len(name) > 128:
            raise PushError("key name must be 1 to 128 characters")
        if rate_per_minute is not None and rate_per_minute < 1:
            raise PushError("rate must be at least 1 per minute")
        value = secret if secret is not None else new_secret()
        row = ApiKeyRow(
            id=_new_id(),
            name=name,
            scope=scope,
            secret_hash=hash_secret(value),
            rate_per_minute=rate_per_minute,
            created_at=self._clock(),
            revoked_at=None,
            revoke_note=None,
            replaced_by=None,
            source=source,
        )
        if act is not None:
            act.target = row.id
        await self.store.insert(row, also=act.record if act is not None else None)
        return _api_key(row), value

    async def list(self) -> list[ApiKeyRow]:
        """Every key ever created, revoked ones included (rows carry no secret)."""
        return await self.store.all()

    async def get(self, key_id: str) -> ApiKeyRow:
        row = await self.store.by_id(key_id)
        if row is None:
            raise KeyNotFound(f"no API key with id {key_id!r} (see `lantern keys list`)")
        return row

    async def revoke(
        self, key_id: str, note: str | None = None, *, after_seconds: float = 0.0
    ) -> ApiKeyRow:
        """Revoke ``key_id`` now (or after ``after_seconds``); the row stays with time and note."""
        async with audited(self.store.db, "apikey.revoke", key_id) as act:
            row = await self.get(key_id)
            at = self._clock() + max(0.0, after_seconds)
            if not row.active_at(self._clock()):
                raise PushError(f"API key {key_id} is already revoked")
            act.details.update(name=row.name, after_seconds=max(0.0, after_seconds))
            # False when an earlier revocation is already scheduled (never postponed): the
            # entry is then written after, as the request still succeeds.
            await self.store.revoke(key_id, at, note, also=act.record)
            self._forget(row.secret_hash)
            return await self.get(key_id)

    async def rotate(
        self, key_id: str, *, grace_seconds: float = 0.0, note: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key with the same name, scope and rate; the old one is revoked after
        ``grace_seconds`` (0: at once). Returns the new key and its secret."""
        async with audited(self.store.db, "apikey.rotate", key_id) as act:
            old = await self.get(key_id)
            if not old.active_at(self._clock()):
                raise PushError(f"API key {key_id} is revoked; create a new key instead")
            new_key, secret = await self._create(
                old.name,
                parse_scope(old.scope),
                rate_per_minute=old.rate_per_minute,
                source="cli" if old.source == "env" else old.source,
            )
            act.details.update(new_key=new_key.id, grace_seconds=max(0.0, grace_seconds))
            await self.store.revoke(
                key_id,
                self._clock() + max(0.0, grace_seconds),
                note or f"rotated; replaced by {new_key.id}",
                replaced_by=new_key.id,
                also=act.record,
            )
            self._forget(old.secret_hash)
            return new_key, secret

    async def import_env(self, secrets_: Iterable[str], scope: Scope) -> tuple[int, int]:
        """Import seed-style keys (``API_KEYS``): add new ones with ``scope``; revoke keys that
        an earlier import added and that are no longer listed (the seed's way to revoke).
        Returns (added, revoked)."""
        wanted = {s.strip() for s in secrets_ if s.strip()}
        by_hash = {hash_secret(s): s for s in wanted}
        existing = await self.store.all(source="env")
        known = {row.secret_hash for row in await self.store.all()}
        added = 0
        for digest, secret in by_hash.items():
            if digest in known:
                continue
            # The name shows which entry it is without revealing it (a hash prefix).
            try:
                await self.create(f"API_KEYS {digest[7:15]}", scope, source="env", secret=secret)
            except StoreError:
                # Nodes of a cluster started at once import the same keys: one insert wins.
                if await self.store.by_hash(digest) is None:
                    raise
                continue
            added += 1
        revoked = 0
        now = self._clock()
        for row in existing:
            if row.secret_hash not in by_hash and row.active_at(now):
                async with audited(
                    self.store.db, "apikey.revoke", row.id, name=row.name, reason="API_KEYS"
                ) as act:
                    await self.store.revoke(row.id, now, "removed from API_KEYS", also=act.record)
                self._forget(row.secret_hash)
                revoked += 1
        return added, revoked

    def _forget(self, secret_hash: str) -> None:
        self._revocations += 1
        self._cache.pop(secret_hash, None)


__all__ = [
    "ApiKey",
    "KeyNotFound",
    "KeyService",
    "Scope",
    "hash_secret",
    "new_secret",
    "schemes_allowed",
]
