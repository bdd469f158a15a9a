"""Signing in (admin token, or an operator account) and out.

The sign-in form carries its own CSRF token (a double-submit cookie set with the form), since
there is no session yet. A wrong token or password is refused with 401, counted by the
recorder of failed admin logins, and the form says which way failed.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lantern.console.auth import (
    COOKIE,
    COOKIE_PATH,
    Page,
    read_form,
    served_over_https,
    set_session_cookie,
)
from lantern.console.deps import ConsoleDeps
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.operators import authenticate
from lantern.operators.sessions import ADMIN_TOKEN_OPERATOR
from lantern.security import tokens_equal

__all__ = ["add_routes"]

PRE_COOKIE = "lantern_console_signin"


def _form(
    request: Request, https: bool, message: str = "", status: int = 200, mode: str = ""
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        "signin.html", {"csrf": token, "message": message, "mode": mode}, status=status
    )
    response.set_cookie(
        PRE_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request, https),
    )
    return response


def add_routes(router: APIRouter, routes: Routes, deps: ConsoleDeps) -> None:
    async def sign_in_page(request: Request) -> Response:
        return _form(request, deps.https_public_url)

    async def sign_in(request: Request) -> Response:
        remote = request.client.host if request.client is not None else None
        form = await read_form(request)
        expected = request.cookies.get(PRE_COOKIE, "")
        given = form.get("csrf", "")
        if not expected or not given or not tokens_equal(given, expected):
            return _form(request, deps.https_public_url, "The form expired: sign in again.", 403)
        mode = form.get("mode", "")
        if mode == "token":
            token = form.get("token", "").strip()
            if token and tokens_equal(token, deps.admin_token()):
                operator, role = ADMIN_TOKEN_OPERATOR, "admin"
            else:
                await _failed(deps, remote)
                return _form(request, deps.https_public_url, "Wrong admin token.", 401, "token")
        else:
            account = await authenticate(deps.db, form.get("name", ""), form.get("password", ""))
            if account is None:
                await _failed(deps, remote)
                message = "Wrong name or password, or the account is disabled."
                return _form(request, deps.https_public_url, message, 401, "password")
            operator, role = account.name, account.role
        session_id, _ = await deps.sessions.sign_in(operator, role, remote)
        response = RedirectResponse("/console", status_code=303)
        set_session_cookie(response, request, session_id, deps.https_public_url)
        response.delete_cookie(PRE_COOKIE, path=COOKIE_PATH)
        return response

    router.add_api_route("/console/sign-in", sign_in_page, methods=["GET"], include_in_schema=False)
    router.add_api_route("/console/sign-in", sign_in, methods=["POST"], include_in_schema=False)

    @routes.post("/console/sign-out", needs="viewer")
    async def sign_out(page: Page) -> Response:
        await deps.sessions.sign_out(page.session)
        response = RedirectResponse("/console/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        if page.request.headers.get("hx-request"):
            response.headers["HX-Redirect"] = "/console/sign-in"
        return response


async def _failed(deps: ConsoleDeps, remote: str | None) -> None:
    if deps.auth_failures is not None:
        await deps.auth_failures.failed(remote, "POST /console/sign-in")
