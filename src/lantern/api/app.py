"""Build the FastAPI app: health and readiness here, domain routes from the components."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

import lantern

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
"""Returns problems by name; an empty dict means ready."""


def create_app(
    routers: Sequence[APIRouter] = (), readiness: Sequence[ReadinessCheck] = ()
) -> FastAPI:
    """The HTTP app with ``/healthz`` (process alive) and ``/readyz`` (every check passes)."""
    app = FastAPI(title="Lantern", version=lantern.__version__, docs_url="/docs", redoc_url=None)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": lantern.__version__}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        problems: dict[str, str] = {}
        for check in readiness:
            problems.update(await check())
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    for router in routers:
        app.include_router(router)
    return app
