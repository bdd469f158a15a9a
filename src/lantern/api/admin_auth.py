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
from lantern.iam import sigv4
from lantern.iam.errors import access_denied
from lantern.iam.verifier import Kind, SignatureVerifier, allowed, is_signed
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


def require_admin_or_signature(
    admin_token: Callable[[], str],
    failures: AuthFailures | None,
    verifier: SignatureVerifier | None,
    action: Callable[[Request], str],
) -> Callable[[Request], Awaitable[None]]:
    """As :func:`require_admin`, and also accepting a request signed (SigV4) by an access key
    whose role allows it: GET reads, anything else writes. A signed request that fails is
    answered as AWS does (:mod:`lantern.iam.errors`); ``action`` names the AWS action refused
    (``iotdata:UpdateThingShadow``). Acts as ``access-key:<id>`` for the audit log."""
    admin = require_admin(admin_token, failures)

    async def dependency(request: Request) -> None:
        if verifier is not None:
            signed = sigv4.from_asgi(request.scope, await request.body())
            if is_signed(signed):
                caller = await verifier.authenticate(signed)
                kind: Kind = "read" if request.method == "GET" else "write"
                if not allowed(caller.key.role, kind):
                    raise access_denied(caller.key.id, action(request), "*")
                remote = request.client.host if request.client is not None else None
                set_actor(Actor(f"access-key:{caller.key.id}", remote=remote))
                return
        await admin(request)

    return dependency
