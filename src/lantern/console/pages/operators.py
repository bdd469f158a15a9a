"""Operator accounts, for admins: the list, create (name, role, password) and disable; through
:mod:`lantern.operators` as ``lantern operators`` does (audited as ``operator.create`` and
``operator.disable``). Other roles do not see the page."""

from __future__ import annotations

from starlette.responses import Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.operators import ROLES, create_operator, disable_operator, list_operators

__all__ = ["add_routes"]


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    async def operators_page(page: Page, flash: str = "") -> Response:
        context = page.base(
            "operators", operators=await list_operators(deps.db), roles=ROLES, flash=flash
        )
        return render("operators.html", context, headers={"HX-Push-Url": "/console/operators"})

    @routes.get("/console/operators", needs="admin")
    async def operators(page: Page) -> Response:
        return await operators_page(page)

    @routes.post("/console/operators", needs="admin")
    async def create(page: Page) -> Response:
        name = page.field("name")
        account = await create_operator(
            deps.db, name, page.field("role"), page.form.get("password", "")
        )
        return await operators_page(page, f"Operator {account.name} created ({account.role}).")

    @routes.post("/console/operators/{name}/disable", needs="admin")
    async def disable(page: Page) -> Response:
        account = await disable_operator(deps.db, page.request.path_params["name"])
        return await operators_page(
            page, f"Operator {account.name} disabled; their sessions have ended."
        )
