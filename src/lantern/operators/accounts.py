"""Operator accounts of the web console: a name, a role and a scrypt-hashed password.

Roles: ``admin`` (everything), ``operator`` (everything but API keys and operator accounts),
``viewer`` (read only). Validate first, change nothing on error; each change is recorded in
the audit log (``operator.create``, ``operator.disable``), never with the password or its hash.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from lantern.audit import audited
from lantern.errors import Conflict, InvalidRequest, NotFound
from lantern.gateway.passwords import hash_password, verify_password
from lantern.store import Database
from lantern.store import operators as repo

__all__ = [
    "MIN_PASSWORD",
    "NAME_RE",
    "ROLES",
    "Operator",
    "OperatorConflict",
    "OperatorError",
    "OperatorNotFound",
    "authenticate",
    "create_operator",
    "disable_operator",
    "list_operators",
]

ROLES = ("admin", "operator", "viewer")
NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 12
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password("lantern-timing-equaliser")


class OperatorError(InvalidRequest):
    """An operator account request is invalid; the message says how to fix it."""

    code = "InvalidOperator"


class OperatorNotFound(NotFound):
    code = "OperatorNotFound"


class OperatorConflict(Conflict):
    code = "OperatorConflict"


@dataclass(frozen=True, slots=True)
class Operator:
    """An account as shown to people (no hash)."""

    name: str
    role: str
    disabled: bool
    created_at: float
    disabled_at: float | None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "createdAt": int(self.created_at),
            "disabledAt": None if self.disabled_at is None else int(self.disabled_at),
        }


def _public(row: repo.OperatorRow) -> Operator:
    return Operator(row.name, row.role, row.disabled, row.created_at, row.disabled_at)


def _check(name: str, role: str, password: str) -> None:
    if not NAME_RE.match(name):
        raise OperatorError(f"operator name {name!r} is invalid (1-64 of A-Z a-z 0-9 _.@-)")
    if role not in ROLES:
        raise OperatorError(f"role {role!r} is invalid: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"the password is too short: use at least {MIN_PASSWORD} characters")


async def create_operator(db: Database, name: str, role: str, password: str) -> Operator:
    """Create an enabled account; :class:`OperatorConflict` when the name is taken."""
    async with audited(db, "operator.create", name, role=role) as act:
        _check(name, role, password)
        row = repo.OperatorRow(name, role, hash_password(password), False, time.time(), None)
        async with db.transaction() as conn:
            if await repo.get_operator(conn, name) is not None:
                raise OperatorConflict(f"operator {name} already exists")
            await repo.insert_operator(conn, row)
            await act.record(conn)
    return _public(row)


async def disable_operator(db: Database, name: str) -> Operator:
    """Disable an account and end its sessions (it can no longer sign in)."""
    async with audited(db, "operator.disable", name) as act, db.transaction() as conn:
        row = await repo.get_operator(conn, name)
        if row is None:
            raise OperatorNotFound(f"operator {name} does not exist (see `lantern operators list`)")
        if row.disabled:
            raise OperatorConflict(f"operator {name} is already disabled")
        await repo.set_disabled(conn, name, time.time())
        ended = await repo.delete_sessions_of(conn, name)
        await act.record(conn, sessions_ended=ended)
        row = await repo.get_operator(conn, name)
    assert row is not None
    return _public(row)


async def list_operators(db: Database) -> list[Operator]:
    async with db.connect() as conn:
        return [_public(r) for r in await repo.list_operators(conn)]


async def authenticate(db: Database, name: str, password: str) -> Operator | None:
    """The enabled account ``name`` when ``password`` is its password; None otherwise (an
    unknown name takes as long as a wrong password)."""
    async with db.connect() as conn:
        row = await repo.get_operator(conn, name) if NAME_RE.match(name) else None
    # scrypt takes tens of milliseconds: off the event loop.
    if row is None:
        await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
        return None
    if not await asyncio.to_thread(verify_password, password, row.password_hash):
        return None
    if row.disabled:
        return None
    return _public(row)
