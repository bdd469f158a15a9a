"""The root ``lantern`` command; each domain adds a sub-command group."""

from __future__ import annotations

import typer

import lantern
from lantern.cli.serve import serve_command

app = typer.Typer(
    name="lantern",
    help="Lantern: device platform (MQTT, AWS IoT compatible) and app push gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve_command)


@app.command("version")
def version() -> None:
    """Print Lantern's version."""
    typer.echo(lantern.__version__)


def main() -> None:
    app()
