"""Access keys: created with a role, the secret printed once and stored sealed
(:mod:`.secretbox`), disabled or deleted by the operator, looked up by SigV4 verification.

Roles decide what a key may call (``lantern.awsapi``): ``readonly`` reads (Describe*, List*,
Get*), ``operator`` also creates and changes but may not delete, ``admin`` everything.

Changes are recorded in the audit log (``access_key.create``, ``access_key.disable``,
``access_key.delete``) with the key id, name and role: never the secret.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lantern.audit import audited
from lantern.iam.errors import AccessKeyConflict, AccessKeyError, AccessKeyNotFound
from lantern.iam.secretbox import SecretBox
from lantern.store import Database
from lantern.store import access_keys as repo
from lantern.store.access_keys import AccessKeyRecord

__all__ = ["ROLES", "AccessKeyRecord", "AccessKeys", "ActiveKey", "Role"]

Role = str
ROLES = ("admin", "operator", "readonly")
_NAME = re.compile(r"^[A-Za-z0-9_.@+=,-]{1,128}$")
# AWS key ids are 20 upper-case characters starting with a 4-letter type prefix; Lantern's
# start with LKIA (never confused with a real AWS key).
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ID_PREFIX = "LKIA"
TOUCH_INTERVAL = 60.0  # seconds between two writes of a key's last use


def _new_key_id() -> str:
    return _ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _new_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters, as AWS secrets


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """An enabled key and its secret (only ever held in memory, to verify a signature)."""

    id: str
    name: str
    role: Role
    secret: str = field(repr=False)


class AccessKeys:
    def __init__(
        self, db: Database, box: SecretBox, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.box = box
        self.clock = clock
        self._touched: dict[str, float] = {}

    async def create(self, name: str, role: Role) -> tuple[AccessKeyRecord, str]:
        """A new enabled key; returns it with its secret (shown once, never stored in clear)."""
        async with audited(self.db, "access_key.create", name=name, role=role) as act:
            if not _NAME.match(name):
                raise AccessKeyError(
                    f"access key name {name!r} is invalid (1-128 of A-Z a-z 0-9 _.@+=,-)"
                )
            if role not in ROLES:
                raise AccessKeyError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
            key_id, secret = _new_key_id(), _new_secret()
            record = AccessKeyRecord(
                id=key_id,
                name=name,
                role=role,
                secret_sealed=self.box.seal(key_id, secret),
                created_at=self.clock(),
            )
            async with self.db.transaction() as conn:
                if await repo.get_key_by_name(conn, name) is not None:
                    raise AccessKeyConflict(
                        f"an access key named {name} exists; choose another name or delete it "
                        f"first (`lantern access-keys delete {name}`)"
                    )
                await repo.insert_key(conn, record)
                act.target = key_id
                await act.record(conn)
            return record, secret

    async def list(self) -> list[AccessKeyRecord]:
        async with self.db.connect() as conn:
            return await repo.list_keys(conn)

    async def _find(self, id_or_name: str) -> AccessKeyRecord:
        async with self.db.connect() as conn:
            found = await repo.get_key(conn, id_or_name) or await repo.get_key_by_name(
                conn, id_or_name
            )
        if found is None:
            raise AccessKeyNotFound(f"no access key {id_or_name}; see `lantern access-keys list`")
        return found

    async def disable(self, id_or_name: str) -> AccessKeyRecord:
        """Refuse the key from now on (every node reads it on each request)."""
        async with audited(self.db, "access_key.disable", id_or_name) as act:
            found = await self._find(id_or_name)
            act.target = found.id
            if found.disabled_at is not None:
                raise AccessKeyConflict(f"access key {found.id} is already disabled")
            async with self.db.transaction() as conn:
                await repo.set_disabled(conn, found.id, self.clock())
                await act.record(conn, name=found.name)
            return found

    async def delete(self, id_or_name: str) -> AccessKeyRecord:
        async with audited(self.db, "access_key.delete", id_or_name) as act:
            found = await self._find(id_or_name)
            act.target = found.id
            async with self.db.transaction() as conn:
                await repo.delete_key(conn, found.id)
                await act.record(conn, name=found.name)
            return found

    async def active(self, key_id: str) -> ActiveKey | None:
        """The enabled key ``key_id`` with its secret; None when unknown or disabled."""
        async with self.db.connect() as conn:
            found = await repo.get_key(conn, key_id)
        if found is None or found.disabled_at is not None:
            return None
        secret = self.box.open(found.id, found.secret_sealed)
        return ActiveKey(found.id, found.name, found.role, secret)

    async def used(self, key_id: str) -> None:
        """Record that ``key_id`` signed a request (written at most once a minute per key)."""
        now = self.clock()
        if now - self._touched.get(key_id, 0.0) < TOUCH_INTERVAL:
            return
        self._touched[key_id] = now
        async with self.db.transaction() as conn:
            await repo.touch_used(conn, key_id, now)
