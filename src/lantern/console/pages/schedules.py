"""Scheduled notifications: the list with next fire times, pause and resume, and each
schedule's history. Through :class:`lantern.schedule.service.ScheduleService` as
``lantern schedules`` does (audited there); destinations are shown masked."""

from __future__ import annotations

from starlette.responses import Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.push.scopes import schemes_allowed
from lantern.schedule.clock import SystemClock
from lantern.schedule.queries import ScheduleQueries
from lantern.schedule.service import ScheduleService

__all__ = ["add_routes"]


def _masked(view: dict[str, object]) -> dict[str, object]:
    """The view without destination tokens (phone tokens and addresses are personal data)."""
    destinations = view.get("destinations") or []
    assert isinstance(destinations, list)
    return {**view, "destinations": [{**d, "destination": "…"} for d in destinations]}


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    queries = ScheduleQueries(deps.db)
    service = ScheduleService.on(deps.db, SystemClock(), schemes_allowed)

    async def list_page(page: Page, flash: str = "") -> Response:
        views = [_masked(v) for v in await queries.schedules(limit=500)]
        context = page.base("schedules", schedules=views, flash=flash)
        return render("schedules.html", context, headers={"HX-Push-Url": "/console/schedules"})

    @routes.get("/console/schedules")
    async def schedules(page: Page) -> Response:
        return await list_page(page)

    @routes.get("/console/schedules/{schedule_id}")
    async def schedule(page: Page) -> Response:
        schedule_id = page.request.path_params["schedule_id"]
        view = _masked(await queries.schedule(schedule_id))
        history = await queries.history(schedule_id, 100)
        return render("schedule.html", page.base("schedules", s=view, history=history))

    @routes.post("/console/schedules/{schedule_id}/{action}")
    async def change(page: Page) -> Response:
        schedule_id, action = (
            page.request.path_params["schedule_id"],
            page.request.path_params["action"],
        )
        if action == "pause":
            view = await service.pause(None, schedule_id)
        elif action == "resume":
            view = await service.resume(None, schedule_id)
        else:
            return await list_page(page, f"Unknown action {action}.")
        return await list_page(page, f"Schedule {schedule_id} is now {view['state']}.")
