"""The console's router: static files, sign-in, and every page (see :mod:`lantern.console`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from lantern.console.deps import ConsoleDeps
from lantern.console.pages import (
    browse,
    claims,
    devices,
    firmware,
    keys,
    overview,
    schedules,
    signin,
)
from lantern.console.routes import Routes
from lantern.console.static import static_endpoint

__all__ = ["build_console_router"]


def build_console_router(deps: ConsoleDeps) -> APIRouter:
    """Every ``/console`` route."""
    router = APIRouter(tags=["console"], include_in_schema=False)
    routes = Routes(router, deps.sessions)
    router.add_api_route("/console/static/{path:path}", static_endpoint, methods=["GET"])

    async def slash() -> Response:
        return RedirectResponse("/console", status_code=307)

    router.add_api_route("/console/", slash, methods=["GET"])
    signin.add_routes(router, routes, deps)
    overview.add_routes(routes, deps)
    devices.add_routes(routes, deps)
    claims.add_routes(routes, deps)
    firmware.add_routes(routes, deps)
    browse.add_routes(routes, deps)
    keys.add_routes(routes, deps)
    schedules.add_routes(routes, deps)
    return router
