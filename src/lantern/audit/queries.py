"""Reading the audit log: filters as operators write them, pages, and the stable JSON form
shared by ``lantern audit list --json`` and ``GET /v1/audit`` (the read side of the audit log;
the store's records are re-exported here so callers need not import the store)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from lantern.errors import LanternError
from lantern.store import Database
from lantern.store import audit as repo
from lantern.store.audit import AuditRow

__all__ = [
    "MAX_LIMIT",
    "AuditPage",
    "AuditQueryError",
    "AuditRow",
    "entry_json",
    "iso_time",
    "parse_cursor",
    "parse_since",
    "read_page",
]

MAX_LIMIT = 1000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class AuditQueryError(LanternError):
    """A filter or cursor is invalid; the message names it."""

    http_status = 400
    code = "InvalidRequest"


def parse_since(text: str, now: float) -> float:
    """``since`` as a UTC epoch: a duration back from ``now`` (``90s``, ``30m``, ``1h``, ``7d``,
    ``2w``) or an ISO 8601 time (``2026-12-04T10:00:00Z``; without an offset it is UTC)."""
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditQueryError(
            f"since: {text!r} is neither an ISO 8601 time (2026-12-04T10:00:00Z) nor a "
            "duration (90s, 30m, 1h, 7d, 2w)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def parse_cursor(text: str) -> int:
    """The id a page continues below (the ``nextCursor`` of the previous page)."""
    if not text.isdigit() or len(text) > 19:
        raise AuditQueryError("cursor: not a cursor from a previous page (nextCursor)")
    return int(text)


def iso_time(at: float) -> str:
    """``2026-12-04T10:11:12.345Z`` (UTC, milliseconds)."""
    stamp = dt.datetime.fromtimestamp(at, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def entry_json(row: repo.AuditRow) -> dict[str, Any]:
    """The stable JSON form of an entry (these keys, in this order)."""
    return {
        "id": row.id,
        "time": iso_time(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "remote": row.remote,
        "details": row.details,
    }


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first, and the cursor of the next (older) page, None on the last."""

    entries: list[repo.AuditRow]
    next_cursor: str | None


async def read_page(
    db: Database,
    *,
    since: float | None = None,
    actor: str | None = None,
    action: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> AuditPage:
    """One page of entries matching every filter given (``action`` is a prefix)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise AuditQueryError(f"limit: must be from 1 to {MAX_LIMIT}")
    where = repo.AuditFilter(
        since=since,
        actor=actor or None,
        action_prefix=action or None,
        before_id=parse_cursor(cursor) if cursor else None,
    )
    async with db.connect() as conn:
        rows = await repo.page(conn, where, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, str(rows[-1].id) if more and rows else None)
