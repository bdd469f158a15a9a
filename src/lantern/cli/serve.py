"""``lantern serve``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from lantern.cli.common import ConfigOption, DataDirOption, console, fail, settings_from
from lantern.errors import LanternError

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
) -> None:
    """Run Lantern: MQTT gateway, HTTP API and workers in one process, until Ctrl-C."""
    # Imported here: every component's dependencies load only when the server really starts.
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

            uvloop.run(serve(settings, ready))
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            asyncio.run(serve(settings, ready))
    except LanternError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(str(exc), "is another Lantern running? choose other ports in settings") from None
    console.print("Lantern stopped.")
