"""Signed-in console sessions: a random id (the cookie's value; only its SHA-256 is stored),
the operator and role it acts as, a CSRF token, and idle expiry.

A session unused for ``idle_timeout`` seconds is gone: :meth:`SessionStore.lookup` refuses it
and deletes it (and sweeps other idle sessions now and then). ``last_seen`` is written at most
once per ``touch_interval`` so that polling pages do not write on every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from lantern.audit import Actor, audited
from lantern.store import Database
from lantern.store import operators as repo

__all__ = ["ADMIN_TOKEN_OPERATOR", "ConsoleSession", "SessionStore"]

ADMIN_TOKEN_OPERATOR = "admin-token"  # noqa: S105 - the name of a way to sign in, not a secret


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live session (``session_id`` is known only right after sign-in)."""

    id_hash: str
    operator: str
    role: str
    csrf_token: str
    remote: str | None

    @property
    def actor(self) -> Actor:
        """Who this session acts as in the audit log."""
        if self.operator == ADMIN_TOKEN_OPERATOR:
            return Actor(ADMIN_TOKEN_OPERATOR, remote=self.remote)
        return Actor(f"operator:{self.operator}", remote=self.remote)


class SessionStore:
    """Creates, finds and ends console sessions (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        idle_timeout: float,
        *,
        touch_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.idle_timeout = idle_timeout
        self.touch_interval = min(touch_interval, idle_timeout / 4)
        self.clock = clock
        self._next_sweep = 0.0

    async def sign_in(
        self, operator: str, role: str, remote: str | None
    ) -> tuple[str, ConsoleSession]:
        """A new session; returns the id to put in the cookie (never stored) and the session.
        Recorded as ``console.sign_in``."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        row = repo.SessionRow(
            _hash(session_id), operator, role, secrets.token_urlsafe(32), now, now, remote
        )
        session = ConsoleSession(row.id_hash, operator, role, row.csrf_token, remote)
        async with (
            audited(self.db, "console.sign_in", operator, actor=session.actor, role=role),
            self.db.transaction() as conn,
        ):
            await repo.insert_session(conn, row)
        return session_id, session

    async def lookup(self, session_id: str, remote: str | None) -> ConsoleSession | None:
        """The live session of ``session_id``, its idle clock restarted; None when unknown or
        idle too long (then it is deleted)."""
        now = self.clock()
        await self._sweep(now)
        key = _hash(session_id)
        async with self.db.connect() as conn:
            row = await repo.get_session(conn, key)
        if row is None:
            return None
        if now - row.last_seen > self.idle_timeout:
            async with self.db.transaction() as conn:
                await repo.delete_session(conn, key)
            return None
        if now - row.last_seen >= self.touch_interval:
            async with self.db.transaction() as conn:
                await repo.touch_session(conn, key, now)
        return ConsoleSession(key, row.operator, row.role, row.csrf_token, remote)

    async def sign_out(self, session: ConsoleSession) -> None:
        """End ``session`` (recorded as ``console.sign_out``)."""
        async with (
            audited(self.db, "console.sign_out", session.operator, actor=session.actor),
            self.db.transaction() as conn,
        ):
            await repo.delete_session(conn, session.id_hash)

    async def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        async with self.db.transaction() as conn:
            await repo.delete_sessions_idle_since(conn, now - self.idle_timeout)
