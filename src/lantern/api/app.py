"""Build the FastAPI app: health and readiness here, domain routes from the components."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

import lantern
from lantern.api.errors import install_error_handler
from lantern.api.openapi import install_docs

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
"""Returns problems by name; an empty dict means ready."""

UnmatchedHandler = Callable[[Request], Awaitable[Response | None]]
"""Asked about a request no route answered (404, or 405 for another method on the path): its
answer, or None to leave the usual ``{"detail": ...}`` one (the AWS API answers signed calls
of operations Lantern lacks, :mod:`lantern.awsapi.unsupported`)."""


class LanternApp(FastAPI):
    """FastAPI with a front door for hot endpoints.

    A plain route whose ASGI endpoint sets ``serve_directly = True`` (``POST /push``) is called
    straight from :meth:`__call__`: FastAPI's middleware stack and router (server-error and
    exception middleware, exit stacks, route matching over every route) cost about as much CPU
    as the endpoint itself. Such an endpoint answers its own errors, 500 included. Other methods
    on the same path still go through the router (405).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct_routes: dict[str, tuple[frozenset[str], ASGIApp]] = {}

    def include_router(self, router: APIRouter, **kwargs: Any) -> None:
        """As FastAPI's, and remember the router's direct routes (see the class docstring)."""
        super().include_router(router, **kwargs)
        prefix = kwargs.get("prefix", "") + router.prefix
        for route in router.routes:
            if isinstance(route, Route) and getattr(route.app, "serve_directly", False):
                methods = frozenset(route.methods or ())
                self.direct_routes[prefix + route.path] = (methods, route.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            direct = self.direct_routes.get(scope["path"])
            if direct is not None and scope["method"] in direct[0]:
                await direct[1](scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    routers: Sequence[APIRouter] = (),
    readiness: Sequence[ReadinessCheck] = (),
    unmatched: Sequence[UnmatchedHandler] = (),
) -> FastAPI:
    """The HTTP app with ``/healthz`` (process alive) and ``/readyz`` (every check passes);
    ``unmatched`` are asked, in order, about requests no route answers."""
    # docs_url=None: install_docs serves /docs with local assets (FastAPI's page uses a CDN).
    app = LanternApp(title="Lantern", version=lantern.__version__, docs_url=None, redoc_url=None)

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

    install_error_handler(app)
    if unmatched:
        _install_unmatched(app, unmatched)
    for router in routers:
        app.include_router(router)
    install_docs(app)
    return app


def _install_unmatched(app: FastAPI, handlers: Sequence[UnmatchedHandler]) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405):
            for handler in handlers:
                answer = await handler(request)
                if answer is not None:
                    return answer
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, handle)
