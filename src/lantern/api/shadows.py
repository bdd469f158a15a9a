"""The iot-data shadow routes (botocore's ``iot-data`` REST shapes), for admins (Bearer token) and
access keys (SigV4, as boto3 and the AWS CLI sign; a readonly key may only read).

* ``GET /things/{thingName}/shadow?name=`` GetThingShadow: the document (state with its delta,
  metadata, version, timestamp);
* ``POST /things/{thingName}/shadow?name=`` UpdateThingShadow: the body is the update request;
  answers the ``update/accepted`` document and broadcasts ``update/delta`` and
  ``update/documents`` on MQTT, as an update over MQTT does;
* ``DELETE /things/{thingName}/shadow?name=`` DeleteThingShadow: ``{"version", "timestamp"}``
  and the ``delete/accepted`` broadcast;
* ``GET /api/things/shadow/ListNamedShadowsForThing/{thingName}?nextToken=&pageSize=``:
  ``{"results", "nextToken", "timestamp"}``.

Errors are :class:`~lantern.shadows.errors.ShadowError`: AWS's status and message, the iot-data
exception name as the error code (``ConflictException``, ...), in the admin error shape.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from lantern.api.admin_auth import require_admin_or_signature
from lantern.audit.auth_failures import AuthFailures
from lantern.iam.verifier import SignatureVerifier
from lantern.shadows import messages
from lantern.shadows.document import (
    CLASSIC,
    SHADOW_NAME,
    check_names,
    client_token,
    parse_body,
    parse_update,
    version_of,
)
from lantern.shadows.errors import bad_request
from lantern.shadows.service import ShadowService

__all__ = ["DEFAULT_PAGE_SIZE", "build_shadows_router"]

DEFAULT_PAGE_SIZE = 25


def _json(message: dict[str, Any]) -> Response:
    return Response(messages.encode(message), media_type="application/json")


def _shadow_name(thing: str, name: str | None) -> str:
    shadow = CLASSIC if name is None else name
    if name is not None and not SHADOW_NAME.fullmatch(name):
        raise bad_request("Invalid shadow name")
    check_names(thing, shadow)
    return shadow


def _page_token(token: str | None) -> str:
    """The last name of the previous page (``nextToken`` is its URL-safe base64)."""
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise bad_request("Invalid nextToken") from None


def _action(request: Request) -> str:
    if request.url.path.startswith("/api/"):
        return "iotdata:ListNamedShadowsForThing"
    verb = {"GET": "Get", "POST": "Update", "DELETE": "Delete"}.get(request.method, "Get")
    return f"iotdata:{verb}ThingShadow"


def build_shadows_router(
    service: ShadowService,
    *,
    admin_token: Callable[[], str],
    auth_failures: AuthFailures | None = None,
    verifier: SignatureVerifier | None = None,
) -> APIRouter:
    """The routes, for the admin token or (with ``verifier``) SigV4-signed requests of an access
    key (readonly keys may only GET)."""
    auth = require_admin_or_signature(admin_token, auth_failures, verifier, _action)
    router = APIRouter(tags=["shadows"], dependencies=[Depends(auth)])

    @router.get("/things/{thingName}/shadow")
    async def get_thing_shadow(thingName: str, name: str | None = None) -> Response:
        shadow = _shadow_name(thingName, name)
        found = await service.get(thingName, shadow)
        return _json(messages.get_accepted(found, None, service.now()))

    @router.post("/things/{thingName}/shadow")
    async def update_thing_shadow(
        thingName: str,
        request: Request,
        name: str | None = None,
    ) -> Response:
        shadow = _shadow_name(thingName, name)
        body = parse_body(await request.body())
        token = client_token(body)
        update = parse_update(body)
        updated = await service.update(thingName, shadow, update)
        now = updated.current.timestamp
        service.publish(service.broadcasts(thingName, shadow, updated, token, now))
        return _json(messages.update_accepted(update, updated.current, token, now))

    @router.delete("/things/{thingName}/shadow")
    async def delete_thing_shadow(
        thingName: str,
        request: Request,
        name: str | None = None,
    ) -> Response:
        shadow = _shadow_name(thingName, name)
        body = parse_body(await request.body())
        token = client_token(body)
        deleted = await service.delete(thingName, shadow, version_of(body))
        now = service.now()
        service.publish(service.broadcasts(thingName, shadow, deleted, token, now))
        return _json(messages.delete_accepted(deleted.version, token, now))

    @router.get("/api/things/shadow/ListNamedShadowsForThing/{thingName}")
    async def list_named_shadows(
        thingName: str,
        nextToken: str | None = None,
        pageSize: int = DEFAULT_PAGE_SIZE,
    ) -> Response:
        check_names(thingName, CLASSIC)
        if not 1 <= pageSize <= 100:
            raise bad_request("pageSize must be between 1 and 100")
        names = await service.named_shadows(thingName, _page_token(nextToken), pageSize + 1)
        page = names[:pageSize]
        more = len(names) > pageSize
        token = base64.urlsafe_b64encode(page[-1].encode()).decode() if more else None
        return _json({"results": page, "nextToken": token, "timestamp": service.now()})

    return router
