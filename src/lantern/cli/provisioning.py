"""``lantern claims|templates|things|certs …``: the operator side of fleet provisioning.

Commands change the registry directly (the database in the data directory); a running
``lantern serve`` notices deactivated or revoked certificates within a second and closes their
connections.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from lantern.api.provisioning import certificate_json, claim_json, template_json, thing_json
from lantern.cli.common import (
    ConfigOption,
    DataDirOption,
    console,
    fail,
    id_table,
    load_ca,
    run_async,
    settings_from,
    when,
    with_store,
)
from lantern.cli.output import JsonOption, print_json
from lantern.pki import KeyType
from lantern.provisioning import admin
from lantern.provisioning.queries import CertificateRecord, ClaimRecord, RegistryQueries
from lantern.store import Database

claims_app = typer.Typer(
    help="Claim certificates (shared by devices to provision).", no_args_is_help=True
)
templates_app = typer.Typer(help="Provisioning templates.", no_args_is_help=True)
things_app = typer.Typer(help="Things (provisioned devices).", no_args_is_help=True)
certs_app = typer.Typer(help="Certificates (claim and device).", no_args_is_help=True)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


# -- claims ------------------------------------------------------------------------------------
@claims_app.command("create")
def claims_create(
    template: Annotated[
        list[str], typer.Option("--template", "-t", help="Template the claim may use (repeatable).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for the certificate and key.")],
    description: Annotated[str, typer.Option(help="A note for operators.")] = "",
    device_limit: Annotated[
        int | None, typer.Option("--device-limit", help="Most devices this claim may register.")
    ] = None,
    key_type: Annotated[str, typer.Option(help="rsa-2048 or ec-p256.")] = "ec-p256",
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a claim certificate and key (what devices ship with) and print their paths."""
    settings = settings_from(data_dir, config)
    try:
        kind = KeyType(key_type)
    except ValueError:
        raise fail(f"unknown key type {key_type!r}", "use rsa-2048 or ec-p256") from None
    ca = load_ca(settings)

    async def work(db: Database) -> tuple[ClaimRecord, str, str]:
        claim, issued = await admin.create_claim(
            db, ca, template, description=description, device_limit=device_limit, key_type=kind
        )
        assert issued.private_key_pem is not None
        return claim, issued.certificate_pem, issued.private_key_pem

    out.mkdir(parents=True, exist_ok=True)
    claim, cert_pem, key_pem = run_async(with_store(settings, work))
    cert_path, key_path = out / f"{claim.id}.pem", out / f"{claim.id}.key"
    cert_path.write_text(cert_pem)
    _write_private(key_path, key_pem)
    ca_path = out / "ca.pem"
    ca_path.write_bytes(ca.ca_file.read_bytes())
    console.print(f"Claim [bold]{claim.id}[/] created for {', '.join(claim.allowed_templates)}.")
    console.print(f"  certificate  {cert_path}\n  private key  {key_path}  (mode 0600)")
    console.print(f"  CA           {ca_path}  (devices trust this to verify the server)")
    console.print(
        "Next: on a device, run\n"
        f"  lantern device provision --claimCert={cert_path} --claimKey={key_path} "
        f"--ca={ca_path} --serialNumber=12345 --manufacturer=my-company --name=my-device "
        "--model=prototype"
    )


@claims_app.command("list")
def claims_list(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List claim certificates."""
    settings = settings_from(data_dir, config)
    rows = run_async(with_store(settings, lambda db: RegistryQueries(db).claims()))
    if as_json:
        print_json([claim_json(r) for r in rows])
        return
    table = id_table("claim", "templates", "devices", "status", "certificate", "created")
    for claim, used in ((r.claim, r.devices) for r in rows):
        limit = f"{used}/{claim.device_limit}" if claim.device_limit else str(used)
        status = (
            f"[red]revoked {when(claim.revoked_at)}[/]" if claim.revoked_at else "[green]active[/]"
        )
        table.add_row(
            claim.id,
            ", ".join(claim.allowed_templates),
            limit,
            status,
            claim.certificate_id[:12],
            when(claim.created_at),
        )
    console.print(
        table
        if rows
        else "No claims yet: `lantern claims create --template "
        "DefaultProvisioningTemplate --out ./claim`."
    )


@claims_app.command("revoke")
def claims_revoke(
    claim_id: Annotated[str, typer.Argument(help="The claim id (see `lantern claims list`).")],
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a claim: its certificate can no longer connect or provision."""
    settings = settings_from(data_dir, config)
    claim = run_async(with_store(settings, lambda db: admin.revoke_claim(db, claim_id)))
    console.print(
        f"Claim [bold]{claim.id}[/] revoked; devices using it can no longer provision "
        "(a running server closes their connections within a second)."
    )


# -- templates ---------------------------------------------------------------------------------
@templates_app.command("list")
def templates_list(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List provisioning templates."""
    settings = settings_from(data_dir, config)
    templates = run_async(with_store(settings, lambda db: RegistryQueries(db).templates()))
    if as_json:
        print_json([template_json(t) for t in templates])
        return
    table = id_table("name", "enabled", "parameters", "hook", "version", "description")
    for t in templates:
        params = ", ".join(p for p in t.body.get("Parameters", {}) if "::" not in p)
        table.add_row(
            t.name,
            "yes" if t.enabled else "[red]no[/]",
            params,
            t.pre_provisioning_hook_url or "",
            str(t.version),
            t.description,
        )
    console.print(table)


@templates_app.command("show")
def templates_show(
    name: str,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a template as JSON (a file `templates update` accepts); with --json, the record
    as GET /v1/templates/NAME returns it."""
    settings = settings_from(data_dir, config)
    t = run_async(with_store(settings, lambda db: RegistryQueries(db).template(name)))
    if t is None:
        raise fail(f"template {name} does not exist", "see `lantern templates list`")
    if as_json:
        print_json(template_json(t))
        return
    doc: dict[str, object] = {
        "description": t.description,
        "enabled": t.enabled,
        "templateBody": t.body,
    }
    if t.pre_provisioning_hook_url:
        doc["preProvisioningHookUrl"] = t.pre_provisioning_hook_url
    console.print_json(json.dumps(doc))


FileArg = Annotated[Path, typer.Option("--file", "-f", help="JSON or TOML template file.")]


@templates_app.command("create")
def templates_create(
    name: str, file: FileArg, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """Create a template from a file (an AWS template body, or {templateBody, description,
    enabled, preProvisioningHookUrl})."""
    settings = settings_from(data_dir, config)
    spec = _load(file)
    t = run_async(with_store(settings, lambda db: admin.create_template(db, name, spec)))
    console.print(
        f"Template [bold]{t.name}[/] created. Next: `lantern claims create "
        f"--template {t.name} --out ./claim`"
    )


@templates_app.command("update")
def templates_update(
    name: str,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="New template file.")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    hook_url: Annotated[
        str | None, typer.Option("--hook-url", help="Pre-provisioning hook.")
    ] = None,
    no_hook: Annotated[bool, typer.Option("--no-hook", help="Remove the hook.")] = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Change a template's body, enabled flag or pre-provisioning hook."""
    settings = settings_from(data_dir, config)
    spec = _load(file) if file else admin.TemplateSpec(body=None)
    if hook_url is not None and not hook_url.startswith(("http://", "https://")):
        raise fail(f"--hook-url {hook_url!r} is not an http(s) URL")
    spec = admin.TemplateSpec(
        body=spec.body,
        description=spec.description,
        enabled=enable if enable is not None else spec.enabled,
        hook_url=hook_url or spec.hook_url,
    )
    t = run_async(
        with_store(settings, lambda db: admin.update_template(db, name, spec, clear_hook=no_hook))
    )
    console.print(
        f"Template [bold]{t.name}[/] updated (version {t.version}, "
        f"{'enabled' if t.enabled else 'DISABLED'})."
    )


def _load(path: Path) -> admin.TemplateSpec:
    try:
        return admin.load_template_file(path)
    except admin.AdminError as exc:
        raise fail(str(exc), "see README, 'Fleet provisioning' for the template format") from None


# -- things ------------------------------------------------------------------------------------
@things_app.command("list")
def things_list(
    as_json: JsonOption = False, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """List things."""
    settings = settings_from(data_dir, config)
    rows = run_async(with_store(settings, lambda db: RegistryQueries(db).things()))
    if as_json:
        print_json([thing_json(t) for t in rows])
        return
    table = id_table("thing", "serial", "manufacturer", "model", "name", "template", "created")
    for t in rows:
        table.add_row(
            t.name,
            t.serial_number or "",
            t.manufacturer or "",
            t.model or "",
            t.device_name or "",
            t.template_name or "",
            when(t.created_at),
        )
    console.print(table if rows else "No things yet: devices appear here once they provision.")


@things_app.command("show")
def things_show(
    name: str,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a thing, its attributes and certificates."""
    settings = settings_from(data_dir, config)
    detail = run_async(with_store(settings, lambda db: RegistryQueries(db).thing(name)))
    if detail is None:
        raise fail(f"thing {name} does not exist", "see `lantern things list`")
    thing, certs = detail.thing, detail.certificates
    if as_json:
        print_json(
            {
                **thing_json(thing),
                "certificates": [{"certificateId": c.id, "status": c.status} for c in certs],
            }
        )
        return
    console.print(
        f"[bold]{thing.name}[/]  project {thing.project}  template "
        f"{thing.template_name or '-'}  created {when(thing.created_at)}"
    )
    console.print(
        f"  serial {thing.serial_number}  manufacturer {thing.manufacturer}  "
        f"model {thing.model}  name {thing.device_name}"
    )
    console.print(f"  attributes {json.dumps(thing.attributes)}")
    for c in certs:
        console.print(f"  certificate {c.id}  {c.status}")


@things_app.command("delete")
def things_delete(name: str, data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Delete a thing; its certificates are deactivated (and their connections closed)."""
    settings = settings_from(data_dir, config)
    certs = run_async(with_store(settings, lambda db: admin.delete_thing(db, name)))
    console.print(f"Thing [bold]{name}[/] deleted; {len(certs)} certificate(s) deactivated.")


# -- certificates ------------------------------------------------------------------------------
@certs_app.command("list")
def certs_list(
    thing: Annotated[str | None, typer.Option(help="Only this thing's certificates.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """List certificates."""
    settings = settings_from(data_dir, config)
    wanted = status.upper() if status else None
    certs = run_async(
        with_store(
            settings, lambda db: RegistryQueries(db).certificates(thing=thing, status=wanted)
        )
    )
    if as_json:
        print_json([certificate_json(c) for c in certs])
        return
    table = id_table("certificate", "kind", "status", "thing", "created")
    for c in certs:
        # 16 hex digits identify a certificate (commands accept unique prefixes); `certs show`
        # prints the whole id.
        table.add_row(c.id[:16], c.kind, c.status, c.thing_name or "", when(c.created_at))
    console.print(table)


@certs_app.command("show")
def certs_show(
    certificate: str,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a certificate (id or unique prefix) with its PEM and policies."""
    settings = settings_from(data_dir, config)

    async def work(db: Database) -> tuple[CertificateRecord, list[str]]:
        cert = await admin.find_certificate(db, certificate)
        return cert, await RegistryQueries(db).certificate_policy_names(cert.id)

    cert, policies = run_async(with_store(settings, work))
    if as_json:
        print_json({**certificate_json(cert), "certificatePem": cert.pem, "policyNames": policies})
        return
    console.print(
        f"[bold]{cert.id}[/]  {cert.kind}  {cert.status}  thing "
        f"{cert.thing_name or '-'}  policies {', '.join(policies) or '-'}"
    )
    console.print(cert.pem, markup=False)


def _set_status(certificate: str, status: str, data_dir: Path | None, config: Path | None) -> None:
    settings = settings_from(data_dir, config)
    cert = run_async(
        with_store(settings, lambda db: admin.set_certificate_status(db, certificate, status))
    )
    console.print(
        f"Certificate [bold]{cert.id[:12]}[/] is now {cert.status}"
        + (
            "; a running server closes its connections within a second."
            if status != "ACTIVE"
            else "."
        )
    )


@certs_app.command("deactivate")
def certs_deactivate(
    certificate: str, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """Make a certificate INACTIVE (reversible with `certs activate`)."""
    _set_status(certificate, "INACTIVE", data_dir, config)


@certs_app.command("activate")
def certs_activate(
    certificate: str, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """Make an INACTIVE certificate ACTIVE again."""
    _set_status(certificate, "ACTIVE", data_dir, config)


@certs_app.command("revoke")
def certs_revoke(
    certificate: str, data_dir: DataDirOption = None, config: ConfigOption = None
) -> None:
    """Revoke a certificate for good."""
    _set_status(certificate, "REVOKED", data_dir, config)
