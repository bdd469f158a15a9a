"""Who is signed in, and what they may do: the session cookie, CSRF and role checks.

Every console route is wrapped by :func:`guarded`: it finds the session (signed out: a page
request is sent to the sign-in page, an htmx or state-changing request gets 401), checks the
CSRF token of every state-changing request (a form field ``csrf`` or the ``X-CSRF-Token``
header, compared in constant time: 403 otherwise), then the role (403), and acts as the
session's operator for the audit log. A service error becomes an HTML answer with its status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lantern.audit import DENIED, set_actor
from lantern.audit.recorder import write_entry
from lantern.console.render import render
from lantern.errors import LanternError
from lantern.operators import ConsoleSession, SessionStore
from lantern.security import tokens_equal
from lantern.store import Database

__all__ = [
    "COOKIE",
    "ROLE_RANK",
    "Handler",
    "Page",
    "guarded",
    "role_allows",
    "served_over_https",
    "set_session_cookie",
]

log = logging.getLogger("lantern.console")

COOKIE = "lantern_console"
COOKIE_PATH = "/console"
MAX_FORM_BYTES = 64 * 1024
ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}
SAFE_METHODS = frozenset({"GET", "HEAD"})


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` may do what ``needed`` may (admin > operator > viewer)."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


@dataclass
class Page:
    """One request's context: the session and the parsed form of a POST."""

    request: Request
    session: ConsoleSession
    form: dict[str, str] = field(default_factory=dict)

    def base(self, active: str, **extra: object) -> dict[str, object]:
        """The template context every page starts from."""
        role = self.session.role
        return {
            "active": active,
            "session": self.session,
            "csrf": self.session.csrf_token,
            "can_operate": role_allows(role, "operator"),
            "can_admin": role_allows(role, "admin"),
            **extra,
        }

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()


Handler = Callable[[Page], Awaitable[Response]]


def served_over_https(request: Request, https_public_url: bool) -> bool:
    """Whether the browser reached the console over HTTPS: TLS here, or a public URL in https
    (a reverse proxy ends TLS in front of Lantern)."""
    return request.url.scheme == "https" or https_public_url


def set_session_cookie(
    response: Response, request: Request, session_id: str, https_public_url: bool = False
) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure when served over HTTPS."""
    response.set_cookie(
        COOKIE,
        session_id,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=served_over_https(request, https_public_url),
    )


def _refused(request: Request, status: int, message: str) -> Response:
    """An error answer: a fragment for htmx (shown in the page's message area), else a page."""
    fragment = bool(request.headers.get("hx-request"))
    context = {"status": status, "message": message, "fragment": fragment}
    return render("error.html", context, status=status)


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (at most 64 KiB); {} for other bodies."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise _FormTooLarge
    raw = bytearray()
    async for chunk in request.stream():  # never more than the limit in memory
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise _FormTooLarge
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


class _FormTooLarge(Exception):
    pass


async def _record_denied(
    db: Database, session: ConsoleSession, request: Request, reason: str
) -> None:
    """A refused state-changing request, in the audit log (``console.denied``); never raises."""
    try:
        async with db.transaction() as conn:
            what = f"{request.method} {request.url.path}"
            await write_entry(conn, session.actor, "console.denied", what, DENIED, {"why": reason})
    except Exception:
        log.exception("cannot record a refused console request")


def guarded(
    sessions: SessionStore, handler: Handler, *, needs: str = "viewer"
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind the session, CSRF and role checks (see the module docstring).
    Refused state-changing requests of a signed-in session are recorded as ``console.denied``."""

    async def endpoint(request: Request) -> Response:
        remote = request.client.host if request.client is not None else None
        session_id = request.cookies.get(COOKIE)
        session = await sessions.lookup(session_id, remote) if session_id else None
        changing = request.method not in SAFE_METHODS
        if session is None:
            if changing or request.headers.get("hx-request"):
                response: Response = _refused(
                    request, 401, "Your session has ended. Sign in again."
                )
                response.headers["HX-Redirect"] = "/console/sign-in"
                return response
            return RedirectResponse("/console/sign-in", status_code=303)
        form: dict[str, str] = {}
        if changing:
            try:
                form = await read_form(request)
            except _FormTooLarge:
                return _refused(request, 413, "The form is too large.")
            given = form.get("csrf") or request.headers.get("x-csrf-token", "")
            if not given or not tokens_equal(given, session.csrf_token):
                await _record_denied(sessions.db, session, request, "csrf")
                return _refused(
                    request, 403, "The request lacks this session's CSRF token: reload the page."
                )
        if not role_allows(session.role, needs):
            if changing:
                await _record_denied(sessions.db, session, request, "role")
            return _refused(
                request, 403, f"Your role ({session.role}) may not do this: it needs {needs}."
            )
        set_actor(session.actor)
        try:
            return await handler(Page(request, session, form))
        except LanternError as exc:
            status = exc.http_status
            if status >= 500:
                log.error("console %s %s failed: %s", request.method, request.url.path, exc)
                return _refused(request, status, "The server failed; try again later.")
            return _refused(request, status, str(exc))

    return endpoint
