"""``lantern device provision``: the seed's ``yarn provision``, talking only MQTT to a Lantern.

Flag names follow the seed (``--claimCert``, ``--serialNumber`` …); kebab-case aliases work too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lantern.cli.common import console, fail
from lantern.device import DeviceError, Endpoint, provision, write_credentials

app = typer.Typer(help="Device-side tools (what a device runs).", no_args_is_help=True)


@app.command("provision")
def provision_command(
    claim_cert: Annotated[
        Path, typer.Option("--claimCert", "--claim-cert", help="Claim certificate (PEM).")
    ],
    claim_key: Annotated[
        Path, typer.Option("--claimKey", "--claim-key", help="Claim private key (PEM).")
    ],
    serial_number: Annotated[str, typer.Option("--serialNumber", "--serial-number")],
    manufacturer: Annotated[str, typer.Option("--manufacturer")],
    name: Annotated[str, typer.Option("--name")],
    model: Annotated[str, typer.Option("--model")],
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="Lantern MQTT endpoint host[:port].")
    ] = "localhost:8883",
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help="CA certificate that signed the "
            "server (default: ca.pem next to the claim certificate).",
        ),
    ] = None,
    certs_dir: Annotated[
        Path,
        typer.Option(
            "--certs-dir",
            "--certsDir",
            help="Where to write <thingName>.pem, .key and ca.pem (what the other device "
            "commands read).",
        ),
    ] = Path("./certs"),
    template: Annotated[str, typer.Option("--template")] = "DefaultProvisioningTemplate",
    csr: Annotated[
        bool,
        typer.Option(
            "--csr",
            help="Generate the key on this device and send "
            "a CSR (the key never leaves the device).",
        ),
    ] = False,
) -> None:
    """Provision this device with a claim certificate; write its own certificate and key."""
    for path, flag in ((claim_cert, "--claimCert"), (claim_key, "--claimKey")):
        if not path.is_file():
            raise fail(
                f"{flag} {path} does not exist", "pass the files `lantern claims create` wrote"
            )
    ca_file = ca or claim_cert.parent / "ca.pem"
    if not ca_file.is_file():
        raise fail(
            f"CA file {ca_file} does not exist",
            "pass --ca with the ca.pem of the Lantern server (in its data directory, ca/)",
        )
    try:
        target = Endpoint.parse(endpoint)
        result = provision(
            target,
            ca_file=ca_file,
            claim_cert=claim_cert,
            claim_key=claim_key,
            template=template,
            use_csr=csr,
            parameters={
                "SerialNumber": serial_number,
                "Manufacturer": manufacturer,
                "Name": name,
                "Model": model,
            },
        )
    except DeviceError as exc:
        raise fail(str(exc), "check --endpoint, --ca and that the claim is not revoked") from None
    cert_path, key_path = write_credentials(result, certs_dir, ca_file)
    console.print(f"Provisioned thing [bold]{result.thing_name}[/]")
    console.print(
        f"  certificate  {cert_path}\n  private key  {key_path}  (mode 0600)\n"
        f"  CA           {certs_dir / 'ca.pem'}"
    )
    console.print(
        "Next: send an observation as this device (client id = thing name):\n"
        f"  lantern device upload-observation --deviceName {result.thing_name} "
        f"--certs-dir {certs_dir} --endpoint {target.host}:{target.port} --payloadValue 100 "
        "--unit % --code 9750d5e5-d766-4793-a97d-16179578cc4d "
        "--codeSystem http://lifeomic.com/fhir/devices"
    )
    typer.echo(result.thing_name)
