"""What the admin routes share: the admin bearer-token check and reading a request body.

A router whose routes are all for admins takes ``dependencies=[Depends(require_admin(token))]``;
:class:`NotAdmin` is answered 401 by the app's error handler (:mod:`lantern.api.errors`). Routers
that mix admin and device routes (firmware, files) put the admin ones on such a sub-router.

Audit: a request that passes acts as ``admin-token`` (with its client address) for the audit log
(:mod:`lantern.audit`); one that fails is counted by the router's :class:`AuthFailures`
(rate-limited ``auth.failed`` entries).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request, Security
from pydantic import BaseModel, ValidationError

from lantern import jsonlimits
from lantern.api.openapi import ADMIN_TOKEN_SCHEME
from lantern.audit import ADMIN_TOKEN, Actor, set_actor
from lantern.audit.auth_failures import AuthFailures
from lantern.errors import InvalidRequest, Unauthorized
from lantern.security import tokens_equal

Body = TypeVar("Body", bound=BaseModel)

AUTH_HINT = "send Authorization: Bearer <admin token> (the file admin-token in the data directory)"


def read_body(model: type[Body], raw: bytes) -> Body:
    """``raw`` validated as ``model``; :class:`InvalidRequest` naming the first wrong field (or
    the depth limit) otherwise."""
    try:
        jsonlimits.check_depth(raw)
        return model.model_validate_json(raw)
    except jsonlimits.JSONTooDeep as exc:
        raise InvalidRequest(f"body: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}") from None


class NotAdmin(Unauthorized):
    """The request lacks the admin token (raised by :func:`require_admin`); answered 401 with
    how to authenticate."""

    def __init__(self) -> None:
        super().__init__(AUTH_HINT)


def require_admin(
    admin_token: Callable[[], str], failures: AuthFailures | None = None
) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that raises :class:`NotAdmin` unless the request carries
    ``Authorization: Bearer <admin token>`` (compared in constant time; the token is read
    through ``admin_token`` on every request). A refused request is counted by ``failures``;
    an accepted one acts as ``admin-token`` for the audit log."""

    async def dependency(
        request: Request,
        # Declares the route's security in the OpenAPI schema (lantern.api.openapi).
        _documented: object = Security(ADMIN_TOKEN_SCHEME),
    ) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        remote = request.client.host if request.client is not None else None
        if scheme.lower() != "bearer" or not tokens_equal(token.strip(), admin_token()):
            if failures is not None:
                await failures.failed(remote, f"{request.method} {request.url.path}")
            raise NotAdmin
        set_actor(Actor(ADMIN_TOKEN, remote=remote))

    return dependency
