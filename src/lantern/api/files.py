"""File routes: ``PUT /files/upload/<fileId>`` (the signed upload link of
docs/device-topics.md) and, for admins, ``GET /files`` (newest first, a page:
``?thing=``, ``limit`` 1-1000 (default 100), ``cursor``; answers ``{"files", "nextCursor"}``),
``GET /files/<id>`` and its ``/content``.

The upload streams the request body to the object store chunk by chunk (never the whole file in
memory). Refusals are 4xx JSON ``{"errorCode", "errorMessage"}``; nothing is stored on any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lantern.api.admin_auth import require_admin
from lantern.api.paging import (
    decode_cursor,
    decode_time_id,
    encode_time_id,
    parse_limit,
    split_page,
)
from lantern.audit.auth_failures import AuthFailures
from lantern.errors import NotFound
from lantern.ingest import queries
from lantern.ingest.errors import UploadRefused
from lantern.ingest.files import FileLinkService

FILES_DEFAULT_LIMIT = 100
FILES_MAX_LIMIT = 1000


def file_json(record: queries.FileRecord) -> dict[str, Any]:
    doc = asdict(record)
    doc.pop("object_key")
    return {
        "fileId": doc["id"],
        "project": doc["project"],
        "thingName": doc["thing_name"],
        "fileName": doc["file_name"],
        "contentType": doc["content_type"],
        "size": doc["size"],
        "sha256": doc["sha256"],
        "backend": doc["backend"],
        "createdAt": doc["created_at"],
    }


def build_files_router(
    service: FileLinkService,
    *,
    admin_token: Callable[[], str],
    auth_failures: AuthFailures | None = None,
) -> APIRouter:
    router = APIRouter(tags=["files"])

    @router.put("/files/upload/{file_id}")
    async def upload(file_id: str, request: Request) -> JSONResponse:
        raw_length = request.headers.get("content-length")
        try:
            length = int(raw_length) if raw_length is not None else None
        except ValueError:
            raise UploadRefused(400, "BadRequest", "Content-Length is not a number") from None

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                if chunk:
                    yield chunk

        record = await service.receive_upload(
            file_id,
            dict(request.query_params),
            request.headers.get("content-type"),
            length,
            body(),
        )
        return JSONResponse(file_json(record), status_code=201)

    # Listing and reading files is for admins: one dependency checks every such route.
    admin_only = Depends(require_admin(admin_token, auth_failures))
    admin = APIRouter(tags=["files"], dependencies=[admin_only])

    @admin.get("/files")
    async def list_files(
        request: Request,
        thing: str | None = None,
        limit: str | None = None,
        cursor: str | None = None,
    ) -> JSONResponse:
        size = parse_limit(limit, FILES_DEFAULT_LIMIT, FILES_MAX_LIMIT)
        before = decode_time_id(decode_cursor(cursor)) if cursor else None
        await service.reconcile_s3()
        rows = await queries.files_page(service.db, before=before, limit=size + 1, thing_name=thing)
        records, next_cursor = split_page(rows, size, lambda r: encode_time_id(r.created_at, r.id))
        return JSONResponse({"files": [file_json(r) for r in records], "nextCursor": next_cursor})

    @admin.get("/files/{file_id}")
    async def get_file(file_id: str, request: Request) -> JSONResponse:
        record = await queries.get_file(service.db, file_id)
        if record is None:
            raise NotFound(f"no file {file_id}")
        return JSONResponse(file_json(record))

    @admin.get("/files/{file_id}/content", response_model=None)
    async def get_content(file_id: str, request: Request) -> StreamingResponse:
        record = await queries.get_file(service.db, file_id)
        if record is None:
            raise NotFound(f"no file {file_id}")
        return StreamingResponse(
            service.store.open_range(record.object_key),
            media_type=record.content_type,
            headers={
                "Content-Length": str(record.size),
                "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(record.file_name)}",
            },
        )

    router.include_router(admin)
    return router


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
