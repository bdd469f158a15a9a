"""The console's own files (CSS, JS) and the vendored libraries, served from the installed
package: no CDN, so the console works on closed networks."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["static_endpoint"]

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _files() -> dict[str, bytes]:
    """Every servable file by its path under ``static/`` (read once: they are small)."""
    root = resources.files("lantern.console") / "static"
    found: dict[str, bytes] = {}

    def walk(node: object, prefix: str) -> None:
        for child in node.iterdir():  # type: ignore[attr-defined]
            name = prefix + child.name
            if child.is_dir():
                walk(child, name + "/")
            elif any(name.endswith(ext) for ext in _TYPES):
                found[name] = child.read_bytes()

    walk(root, "")
    return found


_FILES = _files()


async def static_endpoint(request: Request) -> Response:
    """``GET /console/static/<path>``: one of the package's files, or 404."""
    path = request.path_params["path"]
    body = _FILES.get(path)
    if body is None:
        return PlainTextResponse("not found", status_code=404)
    ext = path[path.rfind(".") :]
    # Vendored files carry their version in the name: they may be cached for long.
    cache = "public, max-age=86400" if path.startswith("vendor/") else "no-cache"
    return Response(
        body,
        media_type=_TYPES[ext],
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )
