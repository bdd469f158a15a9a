"""The observations and files browsers, and the push delivery log filtered by outcome (read
only: the ingest and push services' ``queries``)."""

from __future__ import annotations

import time
from typing import get_args

from starlette.responses import Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.observations import observation_row
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.errors import InvalidRequest
from lantern.ingest import queries as ingest
from lantern.ingest.queries import ObservationQuery
from lantern.push.dispatch import Status
from lantern.push.queries import PushQueries

__all__ = ["add_routes"]

PAGE_SIZE = 50
SHOWN_FILES = 500  # the newest files listed on the files page (the total is counted)
OUTCOMES: tuple[str, ...] = get_args(Status)


def _number(text: str, what: str, default: int) -> int:
    if not text:
        return default
    if not text.isdigit() or len(text) > 6:
        raise InvalidRequest(f"{what}: a whole number")
    return int(text)


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    push = PushQueries(deps.db)

    @routes.get("/console/observations")
    async def observations(page: Page) -> Response:
        thing, code = page.query("device"), page.query("code")
        hours = _number(page.query("hours"), "hours", 0)
        number = _number(page.query("page"), "page", 1) or 1
        query = ObservationQuery(
            thing_name=thing or None,
            code=(None, code) if code else None,
            date_ge=time.time() - hours * 3600 if hours else None,
        )
        resources, total = await ingest.search_observations(
            deps.db, query, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE
        )
        context = page.base(
            "observations",
            rows=[observation_row(r) for r in resources],
            total=total,
            device=thing,
            code=code,
            hours=hours or "",
            number=number,
            more=number * PAGE_SIZE < total,
        )
        return render("observations.html", context)

    @routes.get("/console/files")
    async def files(page: Page) -> Response:
        thing = page.query("device")
        records = await ingest.files_page(
            deps.db, before=None, limit=SHOWN_FILES, thing_name=thing or None
        )
        total = await ingest.count_files(deps.db, thing_name=thing or None)
        context = page.base("files", files=records, total=total, device=thing)
        return render("files.html", context)

    @routes.get("/console/deliveries")
    async def deliveries(page: Page) -> Response:
        status = page.query("status")
        if status and status not in OUTCOMES:
            raise InvalidRequest(f"outcome: one of {', '.join(OUTCOMES)}")
        rows = await push.deliveries(limit=200, status=status or None)
        context = page.base("deliveries", rows=rows, status=status, outcomes=OUTCOMES)
        return render("deliveries.html", context)
