"""``lantern tokens create|list|revoke`` (FHIR read tokens) and ``lantern files list|get``.

Two Typer apps: :data:`tokens_app` and :data:`files_app` (registered as ``tokens`` and ``files``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lantern.api.files import file_json
from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    run_async,
    settings_from,
    when,
    with_store,
)
from lantern.cli.output import JsonOption, print_json, token_json
from lantern.ingest import queries, tokens
from lantern.runtime.datadir import DataDir
from lantern.store import Database
from lantern.store.objects import ObjectStoreError, object_store_from_settings

tokens_app = typer.Typer(help="FHIR API read tokens (project-scoped).", no_args_is_help=True)
files_app = typer.Typer(help="Files uploaded by devices.", no_args_is_help=True)


def _when(ts: float | None) -> str:
    return when(ts, missing="-", zone=" UTC")


@tokens_app.command("create")
def tokens_create(
    project: Annotated[str, typer.Option("--project", help="Project the token may read.")] = (
        "default"
    ),
    scope: Annotated[str, typer.Option("--scope", help="Scope: fhir:read.")] = "fhir:read",
    name: Annotated[str, typer.Option("--name", help="A label to recognise it by.")] = "",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a read token for the FHIR API; the token is printed once."""
    settings = settings_from(data_dir, config)
    label = name or f"{scope} token"

    async def go(db: Database) -> tokens.IssuedToken:
        return await tokens.create_token(db, project=project, scope=scope, name=label)

    issued = run_async(with_store(settings, go))
    console.print(f"Created token [bold]{issued.record.id}[/] ({scope}, project {project}).")
    console.print(issued.token, soft_wrap=True, markup=False)
    console.print(
        "[dim]Store it now: Lantern keeps only its hash. Use it as "
        "'Authorization: Bearer <token>' on /fhir; revoke with "
        f"`lantern tokens revoke {issued.record.id}`.[/]"
    )


@tokens_app.command("list")
def tokens_list(
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List tokens (never their secrets)."""
    settings = settings_from(data_dir, config)
    records = run_async(with_store(settings, lambda db: queries.list_tokens(db, project)))
    if as_json:
        print_json([token_json(r) for r in records])
        return
    if not records:
        console.print("No tokens. Create one with `lantern tokens create --project default`.")
        return
    table = Table("id", "project", "scope", "name", "created", "revoked")
    for r in records:
        table.add_row(r.id, r.project, r.scope, r.name, _when(r.created_at), _when(r.revoked_at))
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from `lantern tokens list`).")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a token; requests using it get 401 from then on."""
    settings = settings_from(data_dir, config)
    run_async(with_store(settings, lambda db: tokens.revoke_token(db, token_id)))
    console.print(f"Revoked token {token_id}.")


@files_app.command("list")
def files_list(
    thing: Annotated[str | None, typer.Option("--thing", help="Only this device.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List uploaded files, newest first."""
    settings = settings_from(data_dir, config)
    records = run_async(
        with_store(settings, lambda db: queries.list_files(db, project=project, thing_name=thing))
    )
    if as_json:
        print_json([file_json(r) for r in records])
        return
    if not records:
        console.print("No files yet. Devices upload with `lantern device upload-file`.")
        return
    table = Table("fileId", "thing", "fileName", "contentType", "size", "sha256", "uploaded")
    for r in records:
        table.add_row(
            r.id,
            r.thing_name,
            r.file_name,
            r.content_type,
            str(r.size),
            r.sha256[:16] + "…",
            _when(r.created_at),
        )
    console.print(table)
    console.print("[dim]Download one with `lantern files get <fileId> --output <path>`.[/]")


@files_app.command("get")
def files_get(
    file_id: Annotated[str, typer.Argument(help="fileId from `lantern files list`.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a file's record and, with --output, download its content (SHA-256 checked)."""
    settings = settings_from(data_dir, config)
    cfg = settings.ingest

    async def go(db: Database) -> queries.FileRecord | None:
        record = await queries.get_file(db, file_id)
        if record is None or output is None:
            return record
        files_dir = DataDir(settings.data_dir.resolve()).files_dir
        try:
            store = object_store_from_settings(cfg, files_dir, backend=record.backend)
        except ObjectStoreError as exc:
            raise fail(str(exc)) from None
        await store.start()
        import hashlib

        digest = hashlib.sha256()
        try:
            with open(output, "wb") as f:  # noqa: ASYNC230 - a CLI with nothing else to run
                async for chunk in store.open_range(record.object_key):
                    digest.update(chunk)
                    f.write(chunk)
        finally:
            await store.close()
        if digest.hexdigest() != record.sha256:
            raise fail(f"the content of {file_id} does not match its SHA-256; it is damaged")
        return record

    record = run_async(with_store(settings, go))
    if record is None:
        raise fail(f"no file {file_id!r}", "see `lantern files list`")
    if as_json:
        # The record only: with --output the file was written (and checked) all the same.
        print_json(file_json(record))
        return
    for label, value in (
        ("fileId", record.id),
        ("project", record.project),
        ("thing", record.thing_name),
        ("fileName", record.file_name),
        ("contentType", record.content_type),
        ("size", str(record.size)),
        ("sha256", record.sha256),
        ("uploaded", _when(record.created_at)),
    ):
        console.print(f"{label:12} {value}", markup=False)
    if output is not None:
        console.print(f"Wrote {record.size} bytes to {output} (SHA-256 verified).")
