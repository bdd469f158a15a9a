"""``lantern cluster status``: the nodes of this installation's cluster, from the registry."""

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
from lantern.cluster.registry import STALE_SECONDS, list_status

app = typer.Typer(help="The nodes of a cluster (see docs/cluster.md).", no_args_is_help=True)


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {s}s" if minutes else f"{s}s"


@app.command("status")
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array (stable keys) instead of a table.")
    ] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List every node: its addresses, MQTT connections, uptime and last heartbeat."""
    settings = settings_from(data_dir, config)
    nodes = run_async(with_store(settings, list_status))
    if as_json:
        typer.echo(json.dumps([n.as_json() for n in nodes], indent=2))
        return
    if not nodes:
        console.print(
            "No node is registered: no `lantern serve` with cluster.nats_url (or --workers) "
            "runs on this database."
        )
        return
    print_table(
        [
            Col("node", id=True),
            Col("state"),
            Col("MQTT", id=True, drop=4),
            Col("HTTP", id=True, drop=5),
            Col("connections", drop=1, justify="right"),
            Col("uptime", drop=3),
            Col("heartbeat", drop=2),
            Col("host", drop=6),
        ],
        [
            [
                n.node_id,
                "[green]up[/]" if n.state == "up" else "[red]down[/]",
                n.mqtt_address,
                n.http_address,
                str(n.connections),
                _duration(n.uptime_seconds),
                f"{when(n.heartbeat_at)} ({_duration(n.heartbeat_age_seconds)} ago)",
                f"{n.hostname} pid {n.pid} v{n.version}",
            ]
            for n in nodes
        ],
    )
    up = sum(1 for n in nodes if n.state == "up")
    console.print(f"{up} of {len(nodes)} nodes up.")
    if up < len(nodes):
        console.print(
            f"[dim]A node is down when it sent no heartbeat for {STALE_SECONDS:g} s; a node "
            "stopped cleanly leaves the list.[/]",
            soft_wrap=False,  # wrapped to the width like the table
        )
