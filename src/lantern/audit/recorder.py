"""Recording administrative actions, at the service functions the CLI and the HTTP API share.

A service function wraps its whole body in :func:`audited`::

    async with audited(db, "claim.revoke", claim_id) as act:
        async with db.transaction() as conn:
            ...                       # the change
            await act.record(conn)    # the entry, in the same transaction

* Success, same transaction (the rule wherever the change is one transaction):
  :meth:`AuditedAction.record` inside the change's transaction, so the action and its entry
  commit together or not at all.
* Success, after the commit: when the body leaves without calling ``record`` (a change made by
  several steps, e.g. a firmware image stored before its row), the entry is written in its own
  transaction right after. If that write fails, :class:`AuditError` is raised: the action was
  done, the caller is told its entry is missing.
* Failure: when the body raises, its transaction has rolled back; an entry with outcome
  ``failed`` and ``{"error": <exception class name>}`` is written in a new transaction and the
  exception goes on. The exception's message is never stored (it may quote input).

``details`` hold small facts chosen by the service (ids, names, statuses, counts), never a
secret; keys that name secrets are refused outright.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.audit.context import Actor, current_actor
from lantern.errors import LanternError
from lantern.store import Database
from lantern.store import audit as repo

__all__ = ["DENIED", "FAILED", "OK", "AuditError", "AuditedAction", "audited", "write_entry"]

log = logging.getLogger(__name__)

OK, FAILED, DENIED = "ok", "failed", "denied"

# Detail keys that would mean a secret is about to be stored (a programming error).
_SECRET_KEYS = frozenset(
    {"password", "secret", "token", "private_key", "privateKey", "key_pem", "api_key", "payload"}
)


class AuditError(LanternError):
    """The action was done but its audit entry could not be written."""


def _checked(details: Mapping[str, Any]) -> dict[str, Any]:
    bad = _SECRET_KEYS.intersection(details)
    if bad:
        raise ValueError(f"audit details must not hold secrets: {', '.join(sorted(bad))}")
    return dict(details)


async def write_entry(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    target: str,
    outcome: str,
    details: Mapping[str, Any],
) -> int:
    """Append one entry in the caller's transaction; returns its id."""
    entry = repo.NewAuditEntry(
        at=time.time(),
        actor=actor.name,
        action=action,
        target=target,
        outcome=outcome,
        remote=actor.remote,
        details=_checked(details),
    )
    return await repo.insert_entry(conn, entry)


class AuditedAction:
    """One administrative action in progress (see the module docstring).

    ``target`` and ``details`` may be completed by the body (e.g. with an id known only once
    the thing is created) before :meth:`record` or the end of the block.
    """

    def __init__(
        self, db: Database, action: str, target: str, details: dict[str, Any], actor: Actor
    ) -> None:
        self.db = db
        self.action = action
        self.target = target
        self.details = details
        self.actor = actor
        self.recorded = False

    async def record(self, conn: AsyncConnection, **details: Any) -> None:
        """Write the success entry in ``conn``'s transaction (the change's own); call it once,
        after the change, inside that transaction."""
        self.details.update(details)
        await write_entry(conn, self.actor, self.action, self.target, OK, self.details)
        self.recorded = True

    async def _record_alone(self, outcome: str, details: Mapping[str, Any]) -> None:
        async with self.db.transaction() as conn:
            await write_entry(conn, self.actor, self.action, self.target, outcome, details)


@asynccontextmanager
async def audited(
    db: Database, action: str, target: str = "", *, actor: Actor | None = None, **details: Any
) -> AsyncIterator[AuditedAction]:
    """Record the action done in the block, by ``actor`` (default: the current actor; see the
    module docstring)."""
    who = actor if actor is not None else current_actor()
    act = AuditedAction(db, action, target, _checked(details), who)
    try:
        yield act
    except Exception as exc:
        failure = {**act.details, "error": type(exc).__name__}
        try:
            await act._record_alone(FAILED, failure)
        except Exception:
            log.exception("cannot write the audit entry of a failed %s", action)
        raise
    if not act.recorded:
        try:
            await act._record_alone(OK, act.details)
        except Exception as exc:
            log.exception("%s was done but its audit entry could not be written", action)
            raise AuditError(
                f"{action} {act.target} was done, but its audit entry could not be written: "
                f"{type(exc).__name__}"
            ) from exc
