"""Firmware routes: the catalog and deployments for admins, and the signed image download.

Admin routes (``Authorization: Bearer <admin token>``)::

    POST   /v1/firmware?version=V[&name=N][&project=P]   body = the image  -> 201
    GET    /v1/firmware[?project=P]          GET /v1/firmware/<id>
    DELETE /v1/firmware/<id>                 (409 while a deployment uses it)
    POST   /v1/deployments                   {"firmwareId", "things"|"group"|"all", ...} -> 201
    GET    /v1/deployments[?project=P]       GET /v1/deployments/<id>
    POST   /v1/deployments/<id>/cancel       {"force": bool}

Device route: ``GET|HEAD /v1/firmware/<id>/image?<signed query>`` — the job document's
``firmwareUrl``. The signature covers the path, thing, job and expiry; a tampered, foreign or
expired link gets 403. Single byte ranges are honoured (``206`` with ``Content-Range``; ``416``
when unsatisfiable), so an interrupted download resumes with ``Range: bytes=<have>-``.
Errors are JSON ``{"errorCode", "errorMessage"}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lantern.api.admin_auth import read_body, require_admin
from lantern.audit.auth_failures import AuthFailures
from lantern.errors import InvalidRequest
from lantern.jobs.catalog import FirmwareCatalog
from lantern.jobs.clock import Clock
from lantern.jobs.deployments import AbortCriterion, DeploymentService, DeploymentSpec
from lantern.jobs.documents import firmware_download_path
from lantern.jobs.errors import JobsNotFound
from lantern.jobs.queries import Deployment, FirmwareRecord, JobsQueries
from lantern.store.signing import LinkExpired, LinkInvalid, UrlSigner


def firmware_json(record: FirmwareRecord) -> dict[str, Any]:
    return {
        "firmwareId": record.id,
        "project": record.project,
        "name": record.name,
        "version": record.version,
        "size": record.size,
        "sha256": record.sha256,
        "createdAt": int(record.created_at),
    }


def progress_of(details: dict[str, str]) -> str | None:
    """The progress a device reported, from the usual statusDetails keys."""
    for key in ("percentProgress", "progress", "percent"):
        if key in details:
            return details[key]
    return None


def deployment_json(d: Deployment) -> dict[str, Any]:
    job = d.job
    out: dict[str, Any] = {
        "deploymentId": job.job_id,
        "project": job.project,
        "firmwareId": job.firmware_id,
        "firmwareVersion": job.document.get("firmwareVersion"),
        "status": job.status.value,
        "target": {"kind": job.target_kind, "group": job.target_group},
        "maxPerMinute": job.max_per_minute,
        "inProgressTimeoutMinutes": job.in_progress_timeout_minutes,
        "abortConfig": {"criteriaList": job.abort_criteria or []},
        "forceCanceled": job.force_canceled,
        "reason": job.reason,
        "createdAt": int(job.created_at),
        "completedAt": int(job.completed_at) if job.completed_at else None,
        "total": d.total,
        "counts": {s.value: n for s, n in sorted(d.counts.items())},
    }
    if d.executions:
        out["executions"] = [
            {
                "thingName": e.thing_name,
                "status": e.status.value,
                "statusDetails": e.status_details,
                "progress": progress_of(e.status_details),
                "versionNumber": e.version_number,
                "queuedAt": int(e.queued_at) if e.queued_at else None,
                "startedAt": int(e.started_at) if e.started_at else None,
                "lastUpdatedAt": int(e.last_updated_at),
            }
            for e in d.executions
        ]
    return out


class _Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failureType: Literal["FAILED", "REJECTED", "TIMED_OUT", "ALL"] = "ALL"
    action: Literal["CANCEL"] = "CANCEL"
    thresholdPercentage: float = Field(gt=0, le=100)
    minNumberOfExecutedThings: int = Field(ge=1)


class _AbortConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criteriaList: list[_Criterion] = Field(min_length=1)


class _CreateDeployment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    firmwareId: str
    things: list[str] = Field(default_factory=list)
    group: str | None = None
    all: bool = False
    project: str = "default"
    maxPerMinute: int | None = None
    inProgressTimeoutMinutes: int | None = None
    abortConfig: _AbortConfig | None = None
    deploymentId: str | None = None


class _Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False
    reason: str = Field(default="canceled by an operator", max_length=256)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` of a single ``bytes=`` range, or None to send everything.

    Raises ``ValueError`` when the range cannot be satisfied (416). Multiple ranges and other
    units are ignored (allowed by RFC 9110), sending the whole image.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    if not sep:
        return None
    if not first:
        if not last.isdigit():
            return None
        suffix = int(last)
        if suffix == 0:
            raise ValueError("an empty suffix range")
        return max(0, size - suffix), size
    if not first.isdigit() or (last and not last.isdigit()):
        return None  # malformed: ignore the header
    start = int(first)
    end = int(last) + 1 if last else size
    if start >= size:
        raise ValueError("the range starts past the end")
    if end <= start:
        return None
    return start, min(end, size)


def build_firmware_router(
    catalog: FirmwareCatalog,
    deployments: DeploymentService,
    queries: JobsQueries,
    signer: UrlSigner,
    clock: Clock,
    *,
    admin_token: Callable[[], str],
    on_change: Callable[[], Awaitable[object]] | None = None,
    auth_failures: AuthFailures | None = None,
) -> APIRouter:
    """The firmware catalog and deployments (admin) and the signed image download (devices)."""
    router = APIRouter(tags=["firmware"])
    # Every route but the signed image download is for admins: one dependency checks them all.
    admin_only = Depends(require_admin(admin_token, auth_failures))
    admin = APIRouter(tags=["firmware"], dependencies=[admin_only])

    async def changed() -> None:
        if on_change is not None:
            await on_change()

    _catalog_routes(admin, catalog, queries)
    _deployment_routes(admin, deployments, queries, changed)
    _image_route(router, catalog, queries, signer, clock)
    router.include_router(admin)
    return router


def _catalog_routes(admin: APIRouter, catalog: FirmwareCatalog, queries: JobsQueries) -> None:
    @admin.post("/v1/firmware")
    async def upload(
        request: Request, version: str = "", name: str = "firmware", project: str = "default"
    ) -> JSONResponse:
        if not version:
            raise InvalidRequest("version: the query parameter is required")

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                if chunk:
                    yield chunk

        record = await catalog.upload(body(), version=version, name=name, project=project)
        return JSONResponse(firmware_json(record), status_code=201)

    @admin.get("/v1/firmware")
    async def list_firmware(request: Request, project: str | None = None) -> JSONResponse:
        return JSONResponse([firmware_json(r) for r in await queries.list_firmware(project)])

    @admin.get("/v1/firmware/{firmware_id}")
    async def get_firmware(firmware_id: str, request: Request) -> JSONResponse:
        record = await queries.firmware(firmware_id)
        users = await queries.firmware_users(firmware_id)
        return JSONResponse({**firmware_json(record), "usedBy": users})

    @admin.delete("/v1/firmware/{firmware_id}")
    async def delete_firmware(firmware_id: str, request: Request) -> JSONResponse:
        record = await catalog.delete(firmware_id)
        return JSONResponse({"deleted": firmware_json(record)})


def _deployment_routes(
    admin: APIRouter,
    deployments: DeploymentService,
    queries: JobsQueries,
    changed: Callable[[], Awaitable[None]],
) -> None:
    @admin.post("/v1/deployments")
    async def create_deployment(request: Request) -> JSONResponse:
        body = read_body(_CreateDeployment, await request.body())
        criteria = body.abortConfig.criteriaList if body.abortConfig else []
        spec = DeploymentSpec(
            firmware_id=body.firmwareId,
            things=body.things,
            group=body.group,
            all_things=body.all,
            project=body.project,
            max_per_minute=body.maxPerMinute,
            in_progress_timeout_minutes=body.inProgressTimeoutMinutes,
            abort=[
                AbortCriterion(c.failureType, c.thresholdPercentage, c.minNumberOfExecutedThings)
                for c in criteria
            ],
            deployment_id=body.deploymentId,
        )
        job = await deployments.create(spec)
        await changed()
        return JSONResponse(deployment_json(await queries.deployment(job.job_id)), status_code=201)

    @admin.get("/v1/deployments")
    async def list_deployments(request: Request, project: str | None = None) -> JSONResponse:
        return JSONResponse([deployment_json(d) for d in await queries.list_deployments(project)])

    @admin.get("/v1/deployments/{deployment_id}")
    async def get_deployment(deployment_id: str, request: Request) -> JSONResponse:
        return JSONResponse(deployment_json(await queries.deployment(deployment_id)))

    @admin.post("/v1/deployments/{deployment_id}/cancel")
    async def cancel_deployment(deployment_id: str, request: Request) -> JSONResponse:
        raw = await request.body()
        body = read_body(_Cancel, raw) if raw.strip() else _Cancel()
        canceled = await deployments.cancel(deployment_id, force=body.force, reason=body.reason)
        await changed()
        result = deployment_json(await queries.deployment(deployment_id, with_executions=False))
        return JSONResponse({**result, "canceledExecutions": len(canceled)})


def _image_route(
    router: APIRouter,
    catalog: FirmwareCatalog,
    queries: JobsQueries,
    signer: UrlSigner,
    clock: Clock,
) -> None:
    @router.api_route("/v1/firmware/{firmware_id}/image", methods=["GET", "HEAD"])
    async def image(firmware_id: str, request: Request) -> Response:
        path = firmware_download_path(firmware_id)
        try:
            signer.verify("GET", path, dict(request.query_params), clock.now())
        except LinkExpired:
            raise LinkExpired("the firmware link has expired; ask for the job again") from None
        except LinkInvalid:
            raise LinkInvalid("the firmware link is not valid") from None
        try:
            record = await queries.firmware(firmware_id)
        except JobsNotFound:
            raise JobsNotFound("the firmware no longer exists") from None
        etag = f'"{record.sha256}"'
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, no-store"}
        if_range = request.headers.get("if-range")
        wanted = request.headers.get("range") if if_range in (None, etag) else None
        try:
            span = parse_range(wanted, record.size)
        except ValueError:
            return JSONResponse(
                {
                    "errorCode": "RangeNotSatisfiable",
                    "errorMessage": "the range is outside the image",
                },
                status_code=416,
                headers={**headers, "Content-Range": f"bytes */{record.size}"},
            )
        start, end = span or (0, record.size)
        headers["Content-Length"] = str(end - start)
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{record.size}"
        if request.method == "HEAD":
            return Response(
                status_code=status, headers=headers, media_type="application/octet-stream"
            )
        return StreamingResponse(
            catalog.objects.open_range(record.object_key, start, end),
            status_code=status,
            headers=headers,
            media_type="application/octet-stream",
        )
