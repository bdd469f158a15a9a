"""What every command shares: loading settings, opening the data directory, printing."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.errors import LanternError
from lantern.pki import CertificateAuthority
from lantern.runtime.datadir import DataDir
from lantern.settings import Settings, load_settings
from lantern.store import Database

# Piped output (scripts, CI logs) without COLUMNS gets wide tables: see fit_width.
PIPE_WIDTH = 200
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="LANTERN_DATA_DIR", help="Data directory (default ./lantern-data)."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", envvar="LANTERN_CONFIG", help="TOML settings file."),
]


def fit_width() -> None:
    """Lay out this command's output for its terminal: ``COLUMNS`` when set (a user or a script
    choosing), else the terminal's width, else (piped) :data:`PIPE_WIDTH` columns."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        console.width = int(columns)
    elif sys.stdout.isatty():
        console.width = shutil.get_terminal_size().columns
    else:
        console.width = PIPE_WIDTH


def fail(message: str, hint: str | None = None, code: int = 1) -> typer.Exit:
    """Print an error (and what to do about it) and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    if hint:
        err_console.print(f"[dim]hint:[/] {hint}")
    return typer.Exit(code)


def settings_from(
    data_dir: Path | None, config: Path | None, *, create: bool = False, **overrides: Any
) -> Settings:
    """The command's settings. Only ``lantern serve`` (``create``) may start a new data
    directory: any other command run where there is none exits 2 naming the directory it looked
    for, rather than creating a second CA and database nobody serves."""
    try:
        settings = load_settings(config_file=config, data_dir=data_dir, **overrides)
    except LanternError as exc:
        raise fail(str(exc), "fix the setting named above (see README, 'Settings')") from None
    if not create and not settings.data_dir.is_dir():
        raise fail(
            f"no Lantern data directory at {settings.data_dir.resolve()}",
            "run this command in the directory where `lantern serve` runs (it creates "
            "./lantern-data there), or point at the server's data directory with "
            "--data-dir DIR or LANTERN_DATA_DIR=DIR",
            code=2,
        )
    return settings


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, turning Lantern errors into a clean message and exit 1."""
    try:
        return asyncio.run(coro)
    except LanternError as exc:
        raise fail(str(exc)) from None


async def with_store(settings: Settings, fn: Callable[[Database], Awaitable[T]]) -> T:
    """Open (and migrate) the database, run ``fn``, close it."""
    db = await Database.open(settings.effective_database_url)
    try:
        return await fn(db)
    finally:
        await db.close()


async def _in_connection(db: Database, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with db.connect() as conn:
        return await fn(conn)


def query(settings: Settings, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run a read-only ``fn`` on one connection of the (migrated) database, for a command.

    The same as ``run_async(with_store(...))`` around ``async with db.connect()``: Lantern errors
    become a clean message and exit 1.
    """
    return run_async(with_store(settings, lambda db: _in_connection(db, fn)))


def when(ts: float | None, *, missing: str = "", zone: str = "Z") -> str:
    """A UTC timestamp as ``YYYY-MM-DD HH:MM:SS`` + ``zone``; ``missing`` when there is none."""
    if ts is None:
        return missing
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(f"%Y-%m-%d %H:%M:%S{zone}")


def load_ca(settings: Settings) -> CertificateAuthority:
    """The platform CA in the data directory (which :func:`settings_from` checked exists)."""
    data = DataDir(settings.data_dir.resolve())
    data.ensure()
    ca, _ = CertificateAuthority.load_or_create(data.ca_dir, settings.server_names)
    return ca
