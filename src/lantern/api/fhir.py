"""The FHIR read API under ``/fhir`` (JSON, FHIR R4): metadata, Observation and Device read and
search. Authorised by the admin bearer token (every project) or a ``fhir:read`` token (its
project only). Errors are OperationOutcomes: 400 bad parameter, 401 no/bad token, 404 unknown id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse

import lantern
from lantern.api.openapi import ADMIN_TOKEN_SCHEME, FHIR_TOKEN_SCHEME
from lantern.errors import NotFound, Unauthorized
from lantern.ingest import queries, tokens
from lantern.ingest.fhir import (
    capability_statement,
    device_fhir_id,
    device_resource,
    parse_device_search,
    parse_observation_search,
    parse_paging,
    searchset,
)
from lantern.ingest.queries import ThingRecord
from lantern.security import tokens_equal
from lantern.store import Database

FHIR_JSON = "application/fhir+json"
Caller = Callable[[Request], Awaitable[str | None]]
"""Authenticates a request: its project (None for the admin: every project)."""


def _fhir(doc: dict[str, Any]) -> JSONResponse:
    return JSONResponse(doc, media_type=FHIR_JSON)


def fhir_caller(db: Database, admin_token: Callable[[], str]) -> Caller:
    """The admin token (every project) or a ``fhir:read`` token (its project); 401 otherwise."""

    async def project_of(
        request: Request,
        # Declares the route's security in the OpenAPI schema (lantern.api.openapi).
        _documented: object = Security(ADMIN_TOKEN_SCHEME),
        _or: object = Security(FHIR_TOKEN_SCHEME),
    ) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <admin token or fhir:read token>")
        token = token.strip()
        if tokens_equal(token, admin_token()):
            return None
        record = await tokens.authenticate(db, token, "fhir:read")
        return record.project

    return project_of


def build_fhir_router(
    db: Database, *, admin_token: Callable[[], str], public_url: Callable[[], str | None]
) -> APIRouter:
    """The ``/fhir`` routes over ``db``. Links in responses (Bundle ``next``, ``fullUrl``) start
    with ``public_url()`` when one is configured, else with the address the caller used (scheme
    and Host header), so a client that reached us as 127.0.0.1 can follow them."""
    router = APIRouter(prefix="/fhir", tags=["fhir"])

    def base_url(request: Request) -> str:
        return (public_url() or str(request.base_url)).rstrip("/")

    @router.get("/metadata")
    async def metadata(request: Request) -> JSONResponse:
        return _fhir(capability_statement(base_url(request), lantern.__version__))

    caller = Depends(fhir_caller(db, admin_token))
    _observation_routes(router, db, base_url, caller)
    _device_routes(router, db, base_url, caller)
    return router


async def _things_by_fhir_id(db: Database, project: str | None) -> dict[str, str]:
    # Only things whose names are not FHIR ids need mapping; load lazily and rarely.
    things = await queries.list_things(db, project, limit=100_000)
    return {device_fhir_id(t.name): t.name for t in things if device_fhir_id(t.name) != t.name}


def _observation_routes(
    router: APIRouter, db: Database, base_url: Callable[[Request], str], caller: Any
) -> None:
    @router.get("/Observation/{observation_id}")
    async def read_observation(observation_id: str, project: str | None = caller) -> JSONResponse:
        resource = await queries.get_observation(db, observation_id, project)
        if resource is None:
            raise NotFound(f"Observation/{observation_id} is not known")
        return _fhir(resource)

    @router.get("/Observation")
    async def search_observations(request: Request, project: str | None = caller) -> JSONResponse:
        params = list(request.query_params.multi_items())
        paging = parse_paging(params)
        mapping: dict[str, str] = {}
        if any(k in ("device", "subject") and "thing-" in v for k, v in params):
            mapping = await _things_by_fhir_id(db, project)  # a digest Device id: map it back
        query = parse_observation_search(params, project, mapping)
        resources, total = await queries.search_observations(
            db, query, limit=paging.count, offset=paging.offset
        )
        return _fhir(
            searchset(
                base_url=base_url(request),
                resource_type="Observation",
                resources=resources,
                total=total,
                params=params,
                paging=paging,
            )
        )


def _device_routes(
    router: APIRouter, db: Database, base_url: Callable[[Request], str], caller: Any
) -> None:
    async def find_thing(fhir_id: str, project: str | None) -> ThingRecord | None:
        thing = await queries.get_thing(db, fhir_id)
        if thing is None and fhir_id.startswith("thing-"):
            name = (await _things_by_fhir_id(db, project)).get(fhir_id)
            if name is not None:
                thing = await queries.get_thing(db, name)
        if thing is None or (project is not None and thing.project != project):
            return None
        return thing

    @router.get("/Device/{device_id}")
    async def read_device(device_id: str, project: str | None = caller) -> JSONResponse:
        thing = await find_thing(device_id, project)
        if thing is None:
            raise NotFound(f"Device/{device_id} is not known")
        return _fhir(device_resource(thing))

    @router.get("/Device")
    async def search_devices(request: Request, project: str | None = caller) -> JSONResponse:
        params = list(request.query_params.multi_items())
        paging = parse_paging(params)
        name = parse_device_search(params)
        if name is not None:
            thing = await queries.get_thing(db, name)
            found = [thing] if thing and (project is None or thing.project == project) else []
            total = len(found)
            found = found[paging.offset : paging.offset + paging.count]
        else:
            # Things are few compared with observations; page over the ordered list.
            every = await queries.list_things(db, project, limit=paging.offset + paging.count + 1)
            found = every[paging.offset : paging.offset + paging.count]
            total = len(every)  # > offset + count exactly when a next page exists
        bundle = searchset(
            base_url=base_url(request),
            resource_type="Device",
            resources=[device_resource(t) for t in found],
            total=total,
            params=params,
            paging=paging,
        )
        if name is None:
            # The exact total would need a count query per page; FHIR allows omitting it.
            del bundle["total"]
        return _fhir(bundle)
