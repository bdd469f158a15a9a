"""Registering console routes on a FastAPI router, behind :func:`lantern.console.auth.guarded`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from lantern.console.auth import Handler, guarded
from lantern.operators import SessionStore

__all__ = ["Routes"]


class Routes:
    """``routes.get("/console/x", needs="viewer")(handler)`` registers a guarded route."""

    def __init__(self, router: APIRouter, sessions: SessionStore) -> None:
        self.router = router
        self.sessions = sessions

    def _add(self, method: str, path: str, needs: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.router.add_api_route(
                path,
                guarded(self.sessions, handler, needs=needs),
                methods=[method],
                include_in_schema=False,
            )
            return handler

        return register

    def get(self, path: str, *, needs: str = "viewer") -> Callable[[Handler], Handler]:
        return self._add("GET", path, needs)

    def post(self, path: str, *, needs: str = "operator") -> Callable[[Handler], Handler]:
        return self._add("POST", path, needs)
