"""``lantern operators …``: accounts that sign in to the web console at ``/console``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

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
from lantern.cli.output import JsonOption, print_json
from lantern.cli.tables import Col, print_table
from lantern.operators import ROLES, create_operator, disable_operator, list_operators

app = typer.Typer(
    help="Operator accounts of the web console (roles: admin, operator, viewer).",
    no_args_is_help=True,
)


@app.command("create")
def operators_create(
    name: str,
    role: Annotated[
        str, typer.Option("--role", help="admin, operator (all but keys/accounts) or viewer.")
    ],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create an account; its password is read from standard input (one line)."""
    if role not in ROLES:
        raise fail(f"role {role!r} is invalid", f"use --role with one of {', '.join(ROLES)}")
    settings = settings_from(data_dir, config)
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    run_async(with_store(settings, lambda db: create_operator(db, name, role, password)))
    console.print(
        f"Operator [bold]{name}[/] created with role {role}. "
        "They sign in at <server>/console with this name and password."
    )


@app.command("list")
def operators_list(
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List accounts."""
    settings = settings_from(data_dir, config)
    accounts = run_async(with_store(settings, list_operators))
    if as_json:
        print_json([a.as_json() for a in accounts])
        return
    if not accounts:
        console.print("No operators. Create one: lantern operators create NAME --role viewer")
        return
    print_table(
        [Col("name", id=True), Col("role"), Col("status", drop=2), Col("created", drop=1)],
        [
            [
                a.name,
                a.role,
                f"disabled {when(a.disabled_at)}" if a.disabled else "enabled",
                when(a.created_at),
            ]
            for a in accounts
        ],
    )


@app.command("disable")
def operators_disable(
    name: str, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """Disable an account: it can no longer sign in and its sessions end now."""
    settings = settings_from(data_dir, config)
    run_async(with_store(settings, lambda db: disable_operator(db, name)))
    console.print(f"Operator [bold]{name}[/] disabled; their console sessions have ended.")
