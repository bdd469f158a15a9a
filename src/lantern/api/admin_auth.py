"""What the admin routes share: the admin bearer-token check and their JSON error shape.

A router whose routes are all for admins takes ``dependencies=[Depends(require_admin(token))]``;
:func:`lantern.api.app.create_app` answers :class:`NotAdmin` with :func:`unauthorized`. Routers
that mix admin and device routes call :func:`admin_check`'s predicate per route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from lantern.security import tokens_equal

AUTH_HINT = "send Authorization: Bearer <admin token> (the file admin-token in the data directory)"


def error_json(status: int, code: str, message: str) -> JSONResponse:
    """``{"errorCode", "errorMessage"}`` with ``status``."""
    return JSONResponse({"errorCode": code, "errorMessage": message}, status_code=status)


def admin_check(admin_token: Callable[[], str]) -> Callable[[Request], bool]:
    """A predicate: does the request carry ``Authorization: Bearer <admin token>``? (Compared in
    constant time; the token is read through ``admin_token`` on every call.)"""

    def is_admin(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and tokens_equal(token.strip(), admin_token())

    return is_admin


class NotAdmin(Exception):
    """The request lacks the admin token (raised by :func:`require_admin`)."""


def require_admin(admin_token: Callable[[], str]) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that raises :class:`NotAdmin` unless the request is an admin's."""
    is_admin = admin_check(admin_token)

    async def dependency(request: Request) -> None:
        if not is_admin(request):
            raise NotAdmin

    return dependency


def unauthorized() -> JSONResponse:
    """401 saying how to authenticate."""
    return error_json(401, "Unauthorized", AUTH_HINT)
