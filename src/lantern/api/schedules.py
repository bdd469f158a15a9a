"""``/schedules``: scheduled notifications for research servers, authenticated by API key.

Routes (all JSON; errors are ``{"error": "<message>", "code": "<code>"}``, plus ``field`` for 400)::

    POST   /schedules                  create (201)        400 field / 403 scope / 401 key
    GET    /schedules                  this key's (?activity_id= participant_id= limit= after=)
    GET    /schedules/{id}             one, with next_fire_times
    PATCH  /schedules/{id}             {"paused": true|false}
    DELETE /schedules/{id}             204
    GET    /schedules/{id}/history     occurrences, newest first (?limit=), no message content

A key sees only its own schedules; another key's id is answered 404. The key comes as a Bearer
header (or the legacy JSON ``api_key``), checked by the push gateway's ``require_api_key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from lantern import jsonlimits
from lantern.api.bodies import read_limited
from lantern.jsonlimits import JSONTooDeep
from lantern.schedule.errors import (
    ScheduleConflict,
    ScheduleError,
    ScheduleInvalid,
    ScheduleNotFound,
    ScheduleScopeDenied,
)
from lantern.schedule.service import Owner, ScheduleService

Authenticate = Callable[[Request], Awaitable[Owner]]
MAX_BODY_BYTES = 65536
_STATUS = {
    ScheduleInvalid: 400,
    ScheduleScopeDenied: 403,
    ScheduleNotFound: 404,
    ScheduleConflict: 409,
}


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    content: dict[str, Any] = {"error": message, "code": code}
    if field is not None:
        content["field"] = field
    return JSONResponse(content, status)


def _from_schedule_error(exc: ScheduleError) -> JSONResponse:
    status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 400)
    return _error(status, exc.code, exc.message, getattr(exc, "field", None))


def _from_http(exc: HTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict) and "error" in detail:
        return JSONResponse(detail, exc.status_code, headers=exc.headers)
    return _error(exc.status_code, "unauthorized", str(detail))


async def _json_body(request: Request) -> Any:
    raw = await read_limited(request, MAX_BODY_BYTES)
    if raw is None:
        raise ScheduleInvalid("body", f"larger than {MAX_BODY_BYTES} bytes", "body_too_large")
    try:
        return jsonlimits.loads(raw)
    except JSONTooDeep as exc:
        raise ScheduleInvalid("body", f"is {exc}", "invalid_json") from None
    except ValueError:
        raise ScheduleInvalid("body", "is not valid JSON", "invalid_json") from None


def _limit(request: Request, default: int, maximum: int) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise ScheduleInvalid("limit", f"must be an integer from 1 to {maximum}")
    return int(value)


def schedules_router(service: ScheduleService, authenticate: Authenticate) -> APIRouter:
    """The ``/schedules`` routes over ``service``; ``authenticate`` returns the caller's key."""
    router = APIRouter(tags=["schedules"])

    async def handle(request: Request, action: Callable[[Owner], Awaitable[Response]]) -> Response:
        try:
            owner = await authenticate(request)
        except HTTPException as exc:
            return _from_http(exc)
        try:
            return await action(owner)
        except ScheduleError as exc:
            if exc.code == "body_too_large":
                return _error(413, exc.code, exc.message, "body")
            return _from_schedule_error(exc)

    @router.post("/schedules", status_code=201)
    async def create(request: Request) -> Response:
        async def act(owner: Owner) -> Response:
            view = await service.create(owner, await _json_body(request))
            return JSONResponse(view, 201, headers={"Location": f"/schedules/{view['id']}"})

        return await handle(request, act)

    @router.get("/schedules")
    async def list_schedules(request: Request) -> Response:
        async def act(owner: Owner) -> Response:
            q = request.query_params
            views = await service.list_schedules(
                owner,
                activity_id=q.get("activity_id"),
                participant_id=q.get("participant_id"),
                limit=_limit(request, 100, 500),
                after=q.get("after"),
            )
            return JSONResponse({"schedules": views})

        return await handle(request, act)

    @router.get("/schedules/{schedule_id}")
    async def get(schedule_id: str, request: Request) -> Response:
        async def act(owner: Owner) -> Response:
            return JSONResponse(await service.get(owner, schedule_id))

        return await handle(request, act)

    @router.patch("/schedules/{schedule_id}")
    async def patch(schedule_id: str, request: Request) -> Response:
        async def act(owner: Owner) -> Response:
            body = await _json_body(request)
            if not isinstance(body, dict):
                raise ScheduleInvalid("body", "must be a JSON object", "invalid_json")
            unknown = sorted(set(body) - {"paused", "api_key"})
            if unknown:
                raise ScheduleInvalid(
                    unknown[0][:64], "cannot be changed (only 'paused')", "unknown_field"
                )
            paused = body.get("paused")
            if not isinstance(paused, bool):
                raise ScheduleInvalid("paused", "must be true or false")
            if paused:
                return JSONResponse(await service.pause(owner, schedule_id))
            return JSONResponse(await service.resume(owner, schedule_id))

        return await handle(request, act)

    @router.delete("/schedules/{schedule_id}", status_code=204)
    async def delete(schedule_id: str, request: Request) -> Response:
        async def act(owner: Owner) -> Response:
            await service.delete(owner, schedule_id)
            return Response(status_code=204)

        return await handle(request, act)

    @router.get("/schedules/{schedule_id}/history")
    async def history(schedule_id: str, request: Request) -> Response:
        async def act(owner: Owner) -> Response:
            entries = await service.history(owner, schedule_id, _limit(request, 100, 1000))
            return JSONResponse({"schedule_id": schedule_id, "occurrences": entries})

        return await handle(request, act)

    return router
