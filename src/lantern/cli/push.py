"""``lantern keys …``, ``lantern deliveries list`` and ``lantern push`` (the callers' utility)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    err_console,
    fail,
    run_async,
    settings_from,
    with_store,
)
from lantern.cli.output import JsonOption, api_key_json, delivery_json, print_json
from lantern.push.client import PushClient, PushFailed
from lantern.push.keys import KeyService
from lantern.push.queries import ApiKeyRow, PushQueries
from lantern.push.scopes import parse_scope
from lantern.store import Database

keys_app = typer.Typer(help="API keys of the app gateway (/push).", no_args_is_help=True)
deliveries_app = typer.Typer(help="The app gateway's delivery log.", no_args_is_help=True)

_RATE_RE = re.compile(r"^\s*(\d+)\s*(?:/\s*(s|sec|second|min|minute|h|hour))?\s*$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")


def parse_rate(text: str) -> int:
    """'600/min', '10/s', '36000/h' or a bare per-minute number -> requests per minute."""
    match = _RATE_RE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise fail(f"invalid rate {text!r}", "use N/min, N/s or N/h with N >= 1, e.g. 600/min")
    n, unit = int(match.group(1)), (match.group(2) or "min")
    per_minute = n * 60 if unit.startswith("s") else n // 60 if unit.startswith("h") else n
    if per_minute < 1:
        raise fail(f"rate {text!r} is below 1 per minute")
    return per_minute


def parse_duration(text: str) -> float:
    match = _DURATION_RE.match(text)
    if match is None:
        raise fail(f"invalid duration {text!r}", "use e.g. 90s, 30m, 24h or 7d")
    factor = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]
    return float(match.group(1)) * factor


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _status(row: ApiKeyRow) -> str:
    now = dt.datetime.now(dt.UTC).timestamp()
    if row.revoked_at is None:
        return "[green]active[/]"
    if row.revoked_at > now:
        return f"[yellow]active until {_when(row.revoked_at)}[/]"
    return f"[red]revoked {_when(row.revoked_at)}[/]"


def _print_secret(key_id: str, secret: str, url_hint: str) -> None:
    console.print(f"API key [bold]{key_id}[/] created. The key (shown only now, store it safely):")
    console.print(f"\n  {secret}\n", markup=False)
    console.print(
        "Lantern keeps only a hash of it; a lost key cannot be recovered, only rotated.\n"
        f"Try it: lantern push --api-key <key> --url {url_hint} apns:<device token> "
        """'{"aps": {"alert": "Hello"}}'"""
    )


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option("--name", help="Who the key is for (organisation).")],
    scope: Annotated[
        str, typer.Option("--scope", help="external (apns, gcm) or internal (all five).")
    ] = "external",
    rate: Annotated[
        str | None, typer.Option("--rate", help="Rate limit, e.g. 600/min (default: settings).")
    ] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create an API key and print it once."""
    try:
        checked_scope = parse_scope(scope)
    except ValueError as exc:
        raise fail(str(exc)) from None
    per_minute = parse_rate(rate) if rate is not None else None
    settings = settings_from(data_dir, config)

    async def go(db: Database) -> tuple[str, str]:
        key, secret = await KeyService(db).create(name, checked_scope, rate_per_minute=per_minute)
        return key.id, secret

    key_id, secret = run_async(with_store(settings, go))
    _print_secret(key_id, secret, f"http://localhost:{settings.http.port}")


@keys_app.command("list")
def list_keys(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List API keys (never their secrets), revoked ones included."""
    settings = settings_from(data_dir, config)

    async def go(db: Database) -> list[ApiKeyRow]:
        return await KeyService(db).list()

    rows = run_async(with_store(settings, go))
    if as_json:
        print_json([api_key_json(r) for r in rows])
        return
    if not rows:
        console.print(
            "No API keys yet. Create one: lantern keys create --name ORG --scope external"
        )
        return
    default = settings.push.default_rate_per_minute
    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("name", "scope", "rate/min", "created", "status", "note", "source"):
        table.add_column(column)
    for row in rows:
        rate = str(row.rate_per_minute) if row.rate_per_minute else f"{default} (default)"
        note = row.revoke_note or ""
        if row.replaced_by:
            note = f"{note} → {row.replaced_by}".strip()
        table.add_row(
            row.id, row.name, row.scope, rate, _when(row.created_at), _status(row), note, row.source
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key id (key_…), see `lantern keys list`.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with the key).")] = None,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a key for good (the record stays, with time and note)."""
    settings = settings_from(data_dir, config)

    async def go(db: Database) -> ApiKeyRow:
        return await KeyService(db).revoke(key_id, note)

    row = run_async(with_store(settings, go))
    console.print(
        f"API key {row.id} ({row.name}) revoked at {_when(row.revoked_at)}. "
        f"Running servers refuse it within {settings.push.key_cache_seconds:g}s."
    )


@keys_app.command("rotate")
def rotate_key(
    key_id: Annotated[str, typer.Argument(help="The key to replace.")],
    grace: Annotated[
        str, typer.Option("--grace", help="Keep the old key valid this long (e.g. 24h).")
    ] = "0s",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Issue a new key with the same name, scope and rate; revoke the old one after --grace."""
    seconds = parse_duration(grace)
    settings = settings_from(data_dir, config)

    async def go(db: Database) -> tuple[str, str]:
        key, secret = await KeyService(db).rotate(key_id, grace_seconds=seconds)
        return key.id, secret

    new_id, secret = run_async(with_store(settings, go))
    _print_secret(new_id, secret, f"http://localhost:{settings.http.port}")
    when = "now" if seconds == 0 else f"in {grace.strip()}"
    console.print(f"The old key {key_id} stops working {when}.")


@deliveries_app.command("list")
def list_deliveries(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    key: Annotated[str | None, typer.Option("--key", help="Only this key id.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="delivered, dead_token, failed, …")
    ] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the newest deliveries (no contents: the address appears only as a keyed hash)."""
    settings = settings_from(data_dir, config)

    async def go(db: Database) -> Any:
        return await PushQueries(db).deliveries(limit=limit, key_id=key, status=status)

    rows = run_async(with_store(settings, go))
    if as_json:
        print_json([delivery_json(r) for r in rows])
        return
    if not rows:
        console.print("No deliveries recorded (yet).")
        return
    table = Table("time")
    table.add_column("id", no_wrap=True)
    for column in ("key", "scheme", "address hash", "status", "http", "reason"):
        table.add_column(column)
    table.add_column("attempts", justify="right")
    table.add_column("ms", justify="right")
    for r in rows:
        table.add_row(
            _when(r.created_at),
            r.id,
            r.key_id or "",
            r.scheme,
            r.address_hash[:16],
            r.status,
            str(r.http_status),
            r.reason or "",
            str(r.attempts),
            f"{r.latency_ms:.1f}",
        )
    console.print(table)


def push_command(
    device_token: Annotated[str, typer.Argument(help="<scheme>:<address>, e.g. apns:<hex>.")],
    payload: Annotated[str, typer.Argument(help="The payload as JSON.")],
    api_key: Annotated[str, typer.Option("--api-key", envvar="PUSH_API_KEY", help="Your API key.")],
    url: Annotated[
        str, typer.Option("--url", envvar="PUSH_GATEWAY_URL", help="The gateway's base URL.")
    ] = "http://localhost:8080",
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="CA to trust for an https URL.")
    ] = None,
) -> None:
    """Send one notification through an app gateway (POST /push)."""
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise fail(
            f"the payload is not valid JSON: {exc}", "quote it: '{\"aps\": {...}}'"
        ) from None
    try:
        with PushClient(url, api_key, ca_file=ca_file) as client:
            delivery_id = client.send(device_token, body)
    except PushFailed as exc:
        hint = {
            "invalid_api_key": "check the key, or ask the operator whether it was revoked",
            "dead_token": "the device token is dead: remove it from your records",
            "rate_limited": f"retry after {exc.retry_after or 1:g}s",
            "scope_denied": "this key may only send to apns: and gcm: destinations",
        }.get(exc.code)
        raise fail(str(exc), hint) from None
    except Exception as exc:  # connection refused, TLS …
        err_console.print(f"[dim]{type(exc).__name__}[/]")
        raise fail(f"cannot reach {url}: {exc}", "is `lantern serve` running there?") from None
    console.print(f"accepted: delivery id {delivery_id}")
