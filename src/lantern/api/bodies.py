"""Reading request bodies with a size limit (Starlette's ``Request.body()`` reads any size)."""

from __future__ import annotations

from fastapi import Request

__all__ = ["read_limited"]


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is known to exceed ``limit`` bytes (by its Content-Length, or
    while streaming it, so at most ``limit`` plus one chunk is held). The body is kept on the
    request, so a later ``request.body()`` returns it."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    request._body = bytes(body)  # Starlette's cache of the body
    return request._body
