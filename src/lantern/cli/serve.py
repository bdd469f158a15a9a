"""``lantern serve``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lantern.cli.common import ConfigOption, DataDirOption, console, fail, settings_from
from lantern.errors import LanternError
from lantern.settings import Settings

if TYPE_CHECKING:
    from lantern.runtime.server import RunningServer


def serve_command(
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP port (default 8080; http.port).")
    ] = None,
    mqtt_port: Annotated[
        int | None, typer.Option("--mqtt-port", help="mTLS MQTT port (default 8883; mqtt.port).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes sharing the ports, as a cluster on this machine (default 1; "
            "see docs/cluster.md).",
        ),
    ] = 1,
    worker: Annotated[int | None, typer.Option("--worker", hidden=True)] = None,
    one_machine: Annotated[bool, typer.Option("--one-machine", hidden=True)] = False,
    supervisor_pid: Annotated[int | None, typer.Option("--supervisor-pid", hidden=True)] = None,
) -> None:
    """Run Lantern: MQTT gateway, HTTP API and workers in one process, until Ctrl-C."""
    # Imported here: every component's dependencies load only when the server really starts.
    from lantern.cluster.mode import WorkerRole
    from lantern.cluster.workers import die_with_parent
    from lantern.runtime.logs import configure_logging
    from lantern.runtime.server import serve

    # Flags are validated with the other sources (a bad port is named like a bad setting).
    settings = settings_from(
        data_dir,
        config,
        create=True,
        http=None if http_port is None else {"port": http_port},
        mqtt=None if mqtt_port is None else {"port": mqtt_port},
    )
    configure_logging(
        settings.log_level,
        sql_statements=settings.log_sql_statements,
        fmt=settings.log_format,
    )
    if workers > 1 and worker is None:
        _supervise(settings, workers, config)
        return
    role = None
    if worker is not None:
        die_with_parent(supervisor_pid or os.getppid())
        role = WorkerRole(index=worker, one_machine=one_machine)

    def worker_ready(running: RunningServer) -> None:
        console.print(f"worker {worker} (pid {os.getpid()}) ready")

    def ready(running: RunningServer) -> None:
        console.print("[bold green]Lantern is running.[/]")
        for line in running.banner:
            console.print(f"  {line}")
        console.print("Next: in another terminal, create a claim certificate for your devices:")
        console.print(
            "  lantern claims create --template DefaultProvisioningTemplate --out ./claim"
        )
        console.print("Stop with Ctrl-C.")

    try:
        try:
            import uvloop

            uvloop.run(serve(settings, worker_ready if role else ready, worker=role))
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            asyncio.run(serve(settings, worker_ready if role else ready, worker=role))
    except LanternError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(str(exc), "is another Lantern running? choose other ports in settings") from None
    console.print("Lantern stopped.")


def _supervise(settings: Settings, workers: int, config: Path | None) -> None:
    """``--workers N``: prepare once, run N workers until Ctrl-C."""
    from lantern.runtime.workers import run_workers

    where = settings.cluster.nats_url or "an embedded NATS server"
    console.print(f"[bold green]Lantern[/] starting {workers} workers (messaging over {where}).")
    try:
        run_workers(settings, workers, config)
    except LanternError as exc:
        raise fail(str(exc)) from None
    console.print("Lantern stopped (every worker).")
