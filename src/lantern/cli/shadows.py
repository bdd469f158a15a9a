"""``lantern shadows get|update|delete|list THING [--name NAME]``.

The commands go through the running server's iot-data HTTP routes with the admin token (read
from the data directory), not to the database: an update made here reaches the device as the
``update/delta`` and ``update/documents`` MQTT messages, exactly as one made over MQTT.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from lantern.cli.common import ConfigOption, DataDirOption, fail, settings_from
from lantern.cli.output import JsonOption, print_json
from lantern.runtime.datadir import DataDir
from lantern.settings import Settings

app = typer.Typer(
    help="Device shadows (AWS IoT classic and named), through the running server.",
    no_args_is_help=True,
)

NameOption = Annotated[
    str | None, typer.Option("--name", help="A named shadow (default: the classic shadow).")
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="LANTERN_URL",
        help="The server's HTTP base URL (default: http.public_url, else http://<host>:<port>).",
    ),
]
TIMEOUT = 30.0


def _base_url(settings: Settings, url: str | None) -> str:
    if url:
        return url.rstrip("/")
    http = settings.http
    if http.public_url:
        return http.public_url.rstrip("/")
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    return f"{'https' if http.tls else 'http'}://{host}:{http.port}"


def _call(
    data_dir: Path | None,
    config: Path | None,
    url: str | None,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
) -> Any:
    """One request to the server; its JSON answer, or a clean error and exit 1."""
    settings = settings_from(data_dir, config)
    folder = DataDir(settings.data_dir.resolve())
    try:
        token = folder.admin_token()
    except OSError as exc:
        raise fail(
            f"cannot read the admin token: {exc}", "run `lantern serve` once first"
        ) from None
    ca = folder.ca_dir / "ca.pem"
    verify: Any = str(ca) if settings.http.tls and ca.exists() else True
    base = _base_url(settings, url)
    try:
        with httpx.Client(base_url=base, timeout=TIMEOUT, verify=verify) as client:
            answer = client.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                content=content,
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        raise fail(
            f"cannot reach the server at {base}: {exc}", "is `lantern serve` running?"
        ) from None
    try:
        body = answer.json()
    except ValueError:
        body = {"message": answer.text}
    if answer.status_code >= 400:
        # The iot-data error shape: the exception name in a header, the message in the body.
        code = answer.headers.get("x-amzn-ErrorType", "")
        message = body.get("message", "") if isinstance(body, dict) else answer.text
        raise fail(f"{answer.status_code} {code}: {message}")
    return body


def _print(body: Any) -> None:
    # The server's JSON answer, as it is: these commands print JSON with or without --json.
    print_json(body)


@app.command("get")
def get(
    thing: Annotated[str, typer.Argument(help="The thing name.")],
    name: NameOption = None,
    url: UrlOption = None,
    as_json: JsonOption = True,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a shadow document (state with its delta, metadata, version)."""
    _print(_call(data_dir, config, url, "GET", f"/things/{thing}/shadow", params={"name": name}))


@app.command("update")
def update(
    thing: Annotated[str, typer.Argument(help="The thing name.")],
    document: Annotated[
        str,
        typer.Argument(
            help='The update request, e.g. \'{"state": {"desired": {"on": true}}}\'; '
            "@FILE reads a file, - reads standard input."
        ),
    ],
    name: NameOption = None,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Update a shadow (merges into it; null deletes a key)."""
    if document == "-":
        content = sys.stdin.buffer.read()
    elif document.startswith("@"):
        try:
            content = Path(document[1:]).read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {document[1:]}: {exc}") from None
    else:
        content = document.encode("utf-8")
    path = f"/things/{thing}/shadow"
    _print(_call(data_dir, config, url, "POST", path, params={"name": name}, content=content))


@app.command("delete")
def delete(
    thing: Annotated[str, typer.Argument(help="The thing name.")],
    name: NameOption = None,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a shadow (a shadow created again later continues its version)."""
    path = f"/things/{thing}/shadow"
    _print(_call(data_dir, config, url, "DELETE", path, params={"name": name}))


@app.command("list")
def list_named(
    thing: Annotated[str, typer.Argument(help="The thing name.")],
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=100)] = 25,
    next_token: Annotated[str | None, typer.Option("--next-token")] = None,
    url: UrlOption = None,
    as_json: JsonOption = True,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List a thing's named shadows (one page; pass --next-token for the next)."""
    path = f"/api/things/shadow/ListNamedShadowsForThing/{thing}"
    params = {"pageSize": page_size, "nextToken": next_token}
    _print(_call(data_dir, config, url, "GET", path, params=params))
