"""``lantern mqtt-users …`` (accounts for the plain TCP / WebSocket listeners) and
``lantern policies …`` (AWS-like policy documents for users and devices)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    id_table,
    run_async,
    settings_from,
    with_store,
)
from lantern.cli.output import JsonOption, mqtt_user_json, policy_json, print_json
from lantern.gateway import accounts
from lantern.store import Database

app = typer.Typer(
    help="MQTT user accounts for the plain TCP and WebSocket listeners.", no_args_is_help=True
)
policies_app = typer.Typer(help="Policies (AWS IoT style documents).", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def _read_document(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise fail(f"{path} is not valid JSON: {exc}") from None


@app.command("create")
def users_create(
    username: str,
    policy: Annotated[str | None, typer.Option(help="Name of an existing policy.")] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy-file", help="JSON policy document; stored as policy user-<username>."
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a user; without a policy the user may connect but do nothing."""
    if policy and policy_file:
        raise fail("give --policy or --policy-file, not both")
    settings = settings_from(data_dir, config)
    document = _read_document(policy_file) if policy_file else None
    password = _read_password(password_stdin)

    async def work(db: Database) -> None:
        name = policy
        if document is not None:
            name = f"user-{username}"
            await accounts.put_policy(db, name, document)
        await accounts.create_mqtt_user(db, username, password, policy_name=name)

    run_async(with_store(settings, work))
    console.print(
        f"User [bold]{username}[/] created. It connects on the plain TCP or WebSocket "
        "listener (set mqtt.tcp_port / mqtt.ws_port) with this username and password."
    )


@app.command("list")
def users_list(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List users."""
    settings = settings_from(data_dir, config)
    users = run_async(with_store(settings, accounts.list_mqtt_users))
    if as_json:
        print_json([mqtt_user_json(u) for u in users])
        return
    table = id_table("user", "project", "policy")
    for u in users:
        table.add_row(u.username, u.project, u.policy_name or "[dim](none: no access)[/]")
    console.print(table)


@app.command("passwd")
def users_passwd(
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Set a user's password."""
    settings = settings_from(data_dir, config)
    password = _read_password(password_stdin)
    run_async(
        with_store(settings, lambda db: accounts.set_mqtt_user_password(db, username, password))
    )
    console.print(f"Password of [bold]{username}[/] changed (applies to new connections).")


@app.command("delete")
def users_delete(
    username: str, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """Delete a user."""
    settings = settings_from(data_dir, config)
    run_async(with_store(settings, lambda db: accounts.delete_mqtt_user(db, username)))
    console.print(f"User [bold]{username}[/] deleted.")


@policies_app.command("put")
def policies_put(
    name: str,
    file: Annotated[Path, typer.Option("--file", "-f", help="JSON policy document.")],
    project_wide: Annotated[
        bool, typer.Option("--project-wide", help="Apply to every device of the project.")
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create or replace a policy (applies to connections made after this)."""
    settings = settings_from(data_dir, config)
    document = _read_document(file)
    run_async(
        with_store(
            settings, lambda db: accounts.put_policy(db, name, document, project_wide=project_wide)
        )
    )
    scope = "every device of the project" if project_wide else "what it is attached to"
    console.print(f"Policy [bold]{name}[/] saved; it applies to {scope} on their next connection.")


@policies_app.command("list")
def policies_list(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List policies."""
    settings = settings_from(data_dir, config)
    policies = run_async(with_store(settings, accounts.list_policies))
    if as_json:
        print_json([policy_json(p) for p in policies])
        return
    table = id_table("policy", "project", "project-wide", "statements")
    for p in policies:
        table.add_row(
            p.name,
            p.project,
            "yes" if p.project_wide else "",
            str(len(p.document.get("Statement", []))),
        )
    console.print(table)


@policies_app.command("show")
def policies_show(
    name: str,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a policy document; with --json, the policy's record with its document."""
    settings = settings_from(data_dir, config)
    policy = run_async(with_store(settings, lambda db: accounts.get_policy(db, name)))
    if policy is None:
        raise fail(f"policy {name} does not exist", "see `lantern policies list`")
    if as_json:
        print_json(policy_json(policy))
        return
    console.print_json(json.dumps(policy.document))
