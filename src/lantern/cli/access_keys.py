"""``lantern access-keys …``: access keys for the AWS IoT compatible control plane (SigV4)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    run_async,
    settings_from,
    when,
    with_store,
)
from lantern.cli.tables import Col, print_table
from lantern.iam.keys import ROLES, AccessKeyRecord, AccessKeys
from lantern.iam.secretbox import data_dir_box
from lantern.settings import Settings
from lantern.store import Database

app = typer.Typer(
    help="Access keys for AWS tools (AWS CLI, boto3) calling Lantern's AWS IoT API (SigV4).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _keys(settings: Settings, db: Database) -> AccessKeys:
    return AccessKeys(db, data_dir_box(settings.data_dir.resolve()))


def _key_json(k: AccessKeyRecord) -> dict[str, object]:
    return {
        "AccessKeyId": k.id,
        "UserName": k.name,
        "Role": k.role,
        "Status": "Inactive" if k.disabled_at is not None else "Active",
        "CreateDate": when(k.created_at),
    }


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="A name for the key (who uses it).")],
    role: Annotated[
        str, typer.Option("--role", help=f"What it may do: {', '.join(ROLES)}.")
    ] = "readonly",
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a key; its secret is printed now and never again."""
    settings = settings_from(data_dir, config)
    record, secret = run_async(
        with_store(settings, lambda db: _keys(settings, db).create(name, role))
    )
    if as_json:
        typer.echo(json.dumps({"AccessKeyId": record.id, "SecretAccessKey": secret}))
        return
    console.print(f"Access key [bold]{name}[/] created (role {role}).")
    console.print(f"AccessKeyId      {record.id}")
    console.print(f"SecretAccessKey  {secret}")
    console.print(
        "The secret is shown only now: store it (e.g. `aws configure`). Call Lantern with "
        "`aws iot ... --endpoint-url <Lantern HTTP URL>` or boto3's endpoint_url."
    )


@app.command("list")
def list_keys(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List keys (never their secrets)."""
    settings = settings_from(data_dir, config)
    keys = run_async(with_store(settings, lambda db: _keys(settings, db).list()))
    if as_json:
        typer.echo(json.dumps({"AccessKeyMetadata": [_key_json(k) for k in keys]}))
        return
    print_table(
        [
            Col("access key id", id=True),
            Col("name", id=True),
            Col("role"),
            Col("status"),
            Col("created", drop=2),
            Col("last used", drop=1),
        ],
        [
            [
                k.id,
                k.name,
                k.role,
                "[red]disabled[/]" if k.disabled_at is not None else "active",
                when(k.created_at),
                when(k.last_used_at, missing="-"),
            ]
            for k in keys
        ],
    )


@app.command("disable")
def disable(
    key: Annotated[str, typer.Argument(help="Access key id or name.")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Refuse a key from now on (it stays listed; delete it to remove it)."""
    settings = settings_from(data_dir, config)
    found = run_async(with_store(settings, lambda db: _keys(settings, db).disable(key)))
    console.print(f"Access key {found.id} ({found.name}) disabled: requests signed with it fail.")


@app.command("delete")
def delete(
    key: Annotated[str, typer.Argument(help="Access key id or name.")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Delete a key."""
    settings = settings_from(data_dir, config)
    found = run_async(with_store(settings, lambda db: _keys(settings, db).delete(key)))
    console.print(f"Access key {found.id} ({found.name}) deleted.")
