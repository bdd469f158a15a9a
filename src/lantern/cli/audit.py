"""``lantern audit list``: read the audit log of administrative actions (newest first)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from lantern.audit.queries import (
    MAX_LIMIT,
    AuditQueryError,
    AuditRow,
    entry_json,
    parse_since,
    read_page,
)
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

app = typer.Typer(help="The audit log of administrative actions.", no_args_is_help=True)

TABLE_WIDTH = 80


def _outcome(row: AuditRow) -> str:
    count = row.details.get("count")
    return f"{row.outcome} x{count}" if isinstance(count, int) and count > 1 else row.outcome


def audit_table(rows: list[AuditRow]) -> Table:
    """Time, actor, action, target and outcome; long values fold inside 80 columns (cells are
    plain text: a name with ``[`` is never read as markup)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("actor", overflow="fold", max_width=16)
    table.add_column("action", overflow="fold", max_width=25)
    table.add_column("target", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    for row in rows:
        target = row.target + (f" from {row.remote}" if row.remote else "")
        table.add_row(
            when(row.at, zone=""),
            Text(row.actor),
            Text(row.action),
            Text(target),
            Text(_outcome(row), style="red" if row.outcome != "ok" else ""),
        )
    return table


@app.command("list")
def list_entries(
    since: Annotated[
        str | None,
        typer.Option(
            help="Only entries since an ISO 8601 time (UTC if no offset) or for a "
            "duration back (90s, 30m, 1h, 7d, 2w)."
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor, e.g. admin-token or cli:alice.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="Only actions starting with this, e.g. claim or thing.delete."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="At most this many.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array (stable keys) instead of a table.")
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List audit entries, newest first."""
    settings = settings_from(data_dir, config)
    try:
        start = parse_since(since, time.time()) if since is not None else None
    except AuditQueryError as exc:
        raise fail(str(exc)) from None
    page = run_async(
        with_store(
            settings,
            lambda db: read_page(db, since=start, actor=actor, action=action, limit=limit),
        )
    )
    if as_json:
        typer.echo(json.dumps([entry_json(r) for r in page.entries], indent=2))
        return
    if not page.entries:
        console.print("No audit entries match.")
        return
    console.print(audit_table(page.entries), width=TABLE_WIDTH)
    if page.next_cursor is not None:
        console.print(f"[dim]More entries are older: raise --limit (now {limit}).[/]")
