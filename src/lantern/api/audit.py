"""``GET /v1/audit``: the audit log for admins (``Authorization: Bearer <admin token>``).

Query parameters (all optional): ``since`` (ISO 8601 time, UTC without an offset, or a
duration back such as ``1h``), ``actor`` (exact), ``action`` (prefix, e.g. ``claim``),
``limit`` (1-1000, default 100), ``cursor`` (``nextCursor`` of the previous page).
Answer: ``{"entries": [...], "nextCursor": "..." | null}``, newest first; each entry is
:func:`lantern.audit.queries.entry_json`. Errors are ``{"errorCode", "errorMessage"}`` (400 names
the parameter, 401 without the admin token).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from lantern.api.admin_auth import require_admin
from lantern.audit.auth_failures import AuthFailures
from lantern.audit.queries import entry_json, parse_since, read_page
from lantern.errors import InvalidRequest
from lantern.store import Database

__all__ = ["build_audit_router"]


def build_audit_router(
    db: Database, *, admin_token: Callable[[], str], failures: AuthFailures | None = None
) -> APIRouter:
    router = APIRouter(tags=["audit"], dependencies=[Depends(require_admin(admin_token, failures))])

    @router.get("/v1/audit")
    async def list_audit(
        since: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: str = "100",
        cursor: str | None = None,
    ) -> JSONResponse:
        if not limit.isdigit() or len(limit) > 4:
            raise InvalidRequest("limit: must be an integer from 1 to 1000")
        start = parse_since(since, time.time()) if since else None
        page = await read_page(
            db, since=start, actor=actor, action=action, cursor=cursor, limit=int(limit)
        )
        return JSONResponse(
            {"entries": [entry_json(r) for r in page.entries], "nextCursor": page.next_cursor},
            headers={"Cache-Control": "no-store"},
        )

    return router
