"""``lantern dev``: development helpers, e.g. a test client certificate from the platform CA."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from lantern.audit import audited
from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    load_ca,
    run_async,
    settings_from,
    with_store,
)
from lantern.pki import IssuedCertificate, KeyType
from lantern.store import Database

app = typer.Typer(help="Development helpers (test client certificates).", no_args_is_help=True)

_NAME = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")


@app.command("client-cert")
def client_cert(
    name: Annotated[str, typer.Option("--name", help="Common name and MQTT client id.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the files into.")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Issue a client certificate and key from the platform CA, for testing MQTT clients
    (recorded in the audit log as dev_certificate.issue)."""
    if not _NAME.match(name):
        raise fail(
            f"invalid name {name!r}",
            "use 1-128 characters from A-Z a-z 0-9 : _ - (like a thing name)",
        )
    settings = settings_from(data_dir, config)
    cert_file = out / f"{name}.crt"
    key_file = out / f"{name}.key"
    if cert_file.exists() or key_file.exists():
        raise fail(f"{cert_file} or {key_file} already exists", "choose another --out or --name")
    ca = load_ca(settings)

    async def issue(db: Database) -> IssuedCertificate:
        async with audited(db, "dev_certificate.issue", name=name) as act:
            issued = ca.issue(name, KeyType.EC_P256)
            act.target = issued.certificate_id
            assert issued.private_key_pem is not None
            out.mkdir(parents=True, exist_ok=True)
            cert_file.write_text(issued.certificate_pem)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(issued.private_key_pem)
        return issued

    issued = run_async(with_store(settings, issue))
    mqtt = settings.mqtt
    host = mqtt.public_host
    console.print(f"issued certificate for [bold]{name}[/] (id {issued.certificate_id})")
    console.print(f"  certificate  {cert_file}")
    console.print(f"  private key  {key_file}  (mode 0600)")
    console.print(f"  CA to trust  {ca.ca_file}")
    console.print("next: try it against `lantern serve`, e.g.")
    console.print(
        f"  mosquitto_sub -h {host} -p {mqtt.port} --cafile {ca.ca_file} "
        f"--cert {cert_file} --key {key_file} -i {name} -t 'test/#' -V mqttv5 -v"
    )
    console.print(
        f"  mosquitto_pub -h {host} -p {mqtt.port} --cafile {ca.ca_file} "
        f"--cert {cert_file} --key {key_file} -i {name}-pub -t test/hello -m hi -V mqttv5"
    )
