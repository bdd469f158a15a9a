"""The root ``lantern`` command; each domain adds a sub-command group."""

from __future__ import annotations

import typer

import lantern
from lantern.audit import cli_actor, set_actor
from lantern.cli import access_keys as access_keys_cli
from lantern.cli import audit as audit_cli
from lantern.cli import cluster as cluster_cli
from lantern.cli import devcerts
from lantern.cli import device as device_cli
from lantern.cli import firmware as firmware_cli
from lantern.cli import ingest as ingest_cli
from lantern.cli import jobs as jobs_cli
from lantern.cli import mqtt_users as mqtt_users_cli
from lantern.cli import operators as operators_cli
from lantern.cli import provisioning as provisioning_cli
from lantern.cli import push as push_cli
from lantern.cli import schedules as schedules_cli
from lantern.cli import shadows as shadows_cli
from lantern.cli.serve import serve_command
from lantern.device.ingest import upload_file_command, upload_observation_command
from lantern.device.jobs import firmware_update_command

app = typer.Typer(
    name="lantern",
    help="Lantern: device platform (MQTT, AWS IoT compatible) and app push gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help (not Rich panels): flags show no `<bool>` value and lines wrap at 80 columns.
    rich_markup_mode=None,
)


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    # Every command but `serve` (a server acts for its own callers) records its administrative
    # actions in the audit log as cli:<OS user>.
    if ctx.invoked_subcommand != "serve":
        set_actor(cli_actor())


app.command("serve")(serve_command)
app.add_typer(push_cli.keys_app, name="keys")
app.add_typer(push_cli.deliveries_app, name="deliveries")
app.command("push")(push_cli.push_command)
app.add_typer(ingest_cli.tokens_app, name="tokens")
app.add_typer(ingest_cli.files_app, name="files")
app.add_typer(devcerts.app, name="dev")
app.add_typer(schedules_cli.app, name="schedules")
app.add_typer(firmware_cli.app, name="firmware")
app.add_typer(firmware_cli.deployments_app, name="deployments")
app.add_typer(firmware_cli.groups_app, name="groups")
app.add_typer(jobs_cli.app, name="jobs")
app.add_typer(provisioning_cli.claims_app, name="claims")
app.add_typer(provisioning_cli.templates_app, name="templates")
app.add_typer(provisioning_cli.things_app, name="things")
app.add_typer(provisioning_cli.certs_app, name="certs")
app.add_typer(mqtt_users_cli.app, name="mqtt-users")
app.add_typer(mqtt_users_cli.policies_app, name="policies")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(device_cli.app, name="device")
app.add_typer(shadows_cli.app, name="shadows")
app.add_typer(operators_cli.app, name="operators")
app.add_typer(access_keys_cli.app, name="access-keys")
app.add_typer(cluster_cli.app, name="cluster")
device_cli.app.command("firmware-update")(firmware_update_command)
device_cli.app.command("upload-observation")(upload_observation_command)
device_cli.app.command("upload-file")(upload_file_command)


@app.command("version")
def version() -> None:
    """Print Lantern's version."""
    typer.echo(lantern.__version__)


def main() -> None:
    app()
