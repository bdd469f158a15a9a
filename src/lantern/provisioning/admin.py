"""Operator actions on the registry (the CLI and HTTP routes call these): claims, templates,
things, certificates. Each validates its input, changes nothing on error, and raises
:class:`AdminError` with a message that says how to fix the problem. What is wrong is also in
the error's type: :class:`AdminNotFound` for an unknown claim, template, thing or certificate,
:class:`AdminConflict` when the request clashes with the current state (already exists, already
revoked, a status transition that is not allowed), plain :class:`AdminError` for invalid input.

Every action that changes something is recorded in the audit log (:func:`lantern.audit.audited`)
in the same transaction as the change, by the current actor; a refused one is recorded as
``failed``. Secrets (the claim's private key) never reach the log.
"""

from __future__ import annotations

import secrets
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lantern import jsonlimits
from lantern.audit import AuditedAction, audited
from lantern.pki import CertificateAuthority, IssuedCertificate, KeyType
from lantern.provisioning.errors import ProvisioningError, TemplateInvalid
from lantern.provisioning.template import validate_template_body, validate_template_name
from lantern.store import Database
from lantern.store import registry as reg

__all__ = [
    "TEMPLATE_FIELDS",
    "AdminConflict",
    "AdminError",
    "AdminNotFound",
    "TemplateSpec",
    "create_claim",
    "create_template",
    "delete_thing",
    "find_certificate",
    "load_template_file",
    "parse_template_spec",
    "register_device_certificate",
    "revoke_claim",
    "set_certificate_status",
    "update_template",
]


class AdminError(ProvisioningError):
    """An operator request cannot be done; the message says why and what to do. This class
    itself means the input is invalid."""

    http_status = 400
    code = "InvalidRequest"


class AdminNotFound(AdminError):
    """The claim, template, thing or certificate named does not exist."""

    http_status = 404
    code = "NotFound"


class AdminConflict(AdminError):
    """The request clashes with the current state: already exists, already revoked, or a
    certificate status transition that is not allowed."""

    http_status = 409
    code = "Conflict"


TEMPLATE_FIELDS = ("templateBody", "description", "enabled", "preProvisioningHookUrl")
"""The keys of a template object (file or HTTP body) besides a bare AWS template body."""


@dataclass(frozen=True)
class TemplateSpec:
    """A template as an operator writes it (JSON or TOML file)."""

    body: dict[str, Any] | None
    description: str | None = None
    enabled: bool | None = None
    hook_url: str | None = None


def load_template_file(path: Path) -> TemplateSpec:
    """Read a template file: either a bare AWS template body (with ``Resources``), or an object
    with ``templateBody`` (object or JSON string), ``description``, ``enabled`` and
    ``preProvisioningHookUrl``. ``.toml`` files are TOML, anything else JSON."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AdminError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else jsonlimits.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise AdminError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise AdminError(f"{path} must hold an object")
    if "Resources" in data:
        return TemplateSpec(body=data)
    return parse_template_spec(data, str(path))


def parse_template_spec(data: Mapping[str, Any], where: str) -> TemplateSpec:
    """The :data:`TEMPLATE_FIELDS` of ``data`` (a template file's object or an HTTP body) as a
    spec; a missing or null field is None. ``templateBody`` may be an object or a JSON string
    (its structure is checked by :func:`create_template` / :func:`update_template`). Error
    messages start with ``where`` (the file, or ``body``) and name the field."""
    unknown = set(data) - set(TEMPLATE_FIELDS)
    if unknown:
        raise AdminError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    body = data.get("templateBody")
    if isinstance(body, str):
        try:
            body = jsonlimits.loads(body)
        except jsonlimits.JSONTooDeep as exc:
            raise AdminError(f"{where}: templateBody: {exc}") from None
        except ValueError as exc:
            raise AdminError(f"{where}: templateBody is not valid JSON: {exc}") from None
    hook = data.get("preProvisioningHookUrl")
    if hook is not None and not (
        isinstance(hook, str) and hook.startswith(("http://", "https://"))
    ):
        raise AdminError(f"{where}: preProvisioningHookUrl must be an http(s) URL")
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise AdminError(f"{where}: enabled must be true or false")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise AdminError(f"{where}: description must be a string")
    return TemplateSpec(body=body, description=description, enabled=enabled, hook_url=hook)


def _checked_body(body: object) -> dict[str, Any]:
    try:
        return validate_template_body(body)
    except TemplateInvalid as exc:
        raise AdminError(f"invalid template: {exc}") from None


async def create_template(
    db: Database, name: str, spec: TemplateSpec, project: str = "default"
) -> reg.TemplateRecord:
    """Create a template (audited as ``template.create``)."""
    async with audited(db, "template.create", name) as act:
        return await _create_template(db, act, name, spec, project)


async def _create_template(
    db: Database, act: AuditedAction, name: str, spec: TemplateSpec, project: str
) -> reg.TemplateRecord:
    try:
        validate_template_name(name)
    except TemplateInvalid as exc:
        raise AdminError(str(exc)) from None
    if spec.body is None:
        raise AdminError("the template file has no templateBody")
    body = _checked_body(spec.body)
    now = time.time()
    record = reg.TemplateRecord(
        name=name,
        project=project,
        description=spec.description or "",
        enabled=True if spec.enabled is None else spec.enabled,
        body=body,
        pre_provisioning_hook_url=spec.hook_url,
        version=1,
        created_at=now,
        updated_at=now,
    )
    async with db.transaction() as conn:
        if await reg.get_template(conn, name) is not None:
            raise AdminConflict(
                f"template {name} already exists; use `lantern templates update {name}`"
            )
        await reg.insert_template(conn, record)
        await act.record(conn, enabled=record.enabled, hook=spec.hook_url is not None)
    return record


async def update_template(
    db: Database, name: str, spec: TemplateSpec, *, clear_hook: bool = False
) -> reg.TemplateRecord:
    """Change a template (audited as ``template.update`` with the names of the fields changed;
    the hook URL itself is not recorded: it may carry credentials)."""
    async with audited(db, "template.update", name) as act:
        return await _update_template(db, act, name, spec, clear_hook)


async def _update_template(
    db: Database, act: AuditedAction, name: str, spec: TemplateSpec, clear_hook: bool
) -> reg.TemplateRecord:
    values: dict[str, Any] = {"updated_at": time.time()}
    if spec.body is not None:
        values["body"] = _checked_body(spec.body)
    if spec.description is not None:
        values["description"] = spec.description
    if spec.enabled is not None:
        values["enabled"] = spec.enabled
    if spec.hook_url is not None or clear_hook:
        values["pre_provisioning_hook_url"] = spec.hook_url
    async with db.transaction() as conn:
        if not await reg.update_template(conn, name, values):
            raise AdminNotFound(f"template {name} does not exist; see `lantern templates list`")
        record = await reg.get_template(conn, name)
        assert record is not None
        changed = sorted(k for k in values if k != "updated_at")
        await act.record(conn, fields=changed, enabled=record.enabled, version=record.version)
    return record


async def create_claim(
    db: Database,
    ca: CertificateAuthority,
    templates: list[str],
    *,
    project: str = "default",
    description: str = "",
    device_limit: int | None = None,
    key_type: KeyType = KeyType.EC_P256,
) -> tuple[reg.ClaimRecord, IssuedCertificate]:
    """Issue a claim certificate allowed to use ``templates``; the key is returned, not kept
    (audited as ``claim.create``, without the key)."""
    async with audited(db, "claim.create", templates=list(templates)) as act:
        return await _create_claim(
            db, act, ca, templates, project, description, device_limit, key_type
        )


async def _create_claim(
    db: Database,
    act: AuditedAction,
    ca: CertificateAuthority,
    templates: list[str],
    project: str,
    description: str,
    device_limit: int | None,
    key_type: KeyType,
) -> tuple[reg.ClaimRecord, IssuedCertificate]:
    if not templates:
        raise AdminError("a claim needs at least one template (--template NAME)")
    if device_limit is not None and device_limit < 1:
        raise AdminError("--device-limit must be at least 1")
    async with db.connect() as conn:
        for name in templates:
            template = await reg.get_template(conn, name)
            if template is None or template.project != project:
                raise AdminNotFound(f"template {name} does not exist; see `lantern templates list`")
    claim_id = f"claim-{secrets.token_hex(6)}"
    issued = ca.issue(f"Lantern claim {claim_id}", key_type)
    now = time.time()
    claim = reg.ClaimRecord(
        id=claim_id,
        certificate_id=issued.certificate_id,
        project=project,
        description=description,
        allowed_templates=tuple(dict.fromkeys(templates)),
        device_limit=device_limit,
        created_at=now,
        revoked_at=None,
    )
    async with db.transaction() as conn:
        await reg.insert_certificate(
            conn,
            reg.CertificateRecord(
                id=issued.certificate_id,
                pem=issued.certificate_pem,
                kind="claim",
                status="ACTIVE",
                project=project,
                thing_name=None,
                created_at=now,
                updated_at=now,
            ),
        )
        await reg.insert_claim(conn, claim)
        act.target = claim_id
        await act.record(
            conn,
            certificate_id=issued.certificate_id,
            device_limit=device_limit,
            key_type=key_type.value,
        )
    return claim, issued


async def revoke_claim(db: Database, claim_id: str) -> reg.ClaimRecord:
    """Revoke a claim (audited as ``claim.revoke``)."""
    async with audited(db, "claim.revoke", claim_id) as act, db.transaction() as conn:
        claim = await reg.get_claim(conn, claim_id)
        if claim is None:
            raise AdminNotFound(f"claim {claim_id} does not exist; see `lantern claims list`")
        if claim.revoked_at is not None:
            raise AdminConflict(f"claim {claim_id} is already revoked")
        await reg.revoke_claim(conn, claim_id, time.time())
        await act.record(conn, certificate_id=claim.certificate_id)
    return claim


async def find_certificate(db: Database, id_or_prefix: str) -> reg.CertificateRecord:
    """A certificate by id, or by a unique prefix of at least 8 hex digits."""
    key = id_or_prefix.lower()
    async with db.connect() as conn:
        exact = await reg.get_certificate(conn, key)
        if exact is not None:
            return exact
        if len(key) < 8:
            raise AdminError("give the certificate id or at least its first 8 characters")
        matches = await conn.run_sync(lambda c: reg.certificates_with_prefix(c, key, 101))
    if not matches:
        raise AdminNotFound(f"no certificate {id_or_prefix}; see `lantern certs list`")
    if len(matches) > 1:
        count = "more than 100" if len(matches) > 100 else str(len(matches))
        raise AdminError(f"{id_or_prefix} matches {count} certificates; give more digits")
    return matches[0]


_TRANSITIONS = {
    "ACTIVE": {"INACTIVE", "PENDING_ACTIVATION"},
    "INACTIVE": {"ACTIVE"},
    "REVOKED": {"ACTIVE", "INACTIVE", "PENDING_ACTIVATION"},
}


async def set_certificate_status(
    db: Database, id_or_prefix: str, status: str, *, require_thing: bool = True
) -> reg.CertificateRecord:
    """Activate, deactivate or revoke a certificate (REVOKED is final). Live connections of a
    deactivated or revoked certificate are closed by the gateway within a second. Audited as
    ``certificate.update_status``. ``require_thing=False`` (the AWS API) lets a device
    certificate attached to no thing become ACTIVE (it still cannot connect until attached)."""
    async with audited(db, "certificate.update_status", id_or_prefix, status=status) as act:
        return await _set_certificate_status(db, act, id_or_prefix, status, require_thing)


async def _set_certificate_status(
    db: Database, act: AuditedAction, id_or_prefix: str, status: str, require_thing: bool
) -> reg.CertificateRecord:
    cert = await find_certificate(db, id_or_prefix)
    act.target = cert.id
    if cert.status == status:
        raise AdminConflict(f"certificate {cert.id[:12]} is already {status}")
    if cert.status not in _TRANSITIONS[status]:
        raise AdminConflict(
            f"certificate {cert.id[:12]} is {cert.status}; it cannot become {status}"
        )
    if status == "ACTIVE" and cert.kind == "device" and cert.thing_name is None and require_thing:
        raise AdminConflict("a device certificate must be attached to a thing to be ACTIVE")
    async with db.transaction() as conn:
        await reg.set_certificate_status(conn, cert.id, status, time.time())
        if cert.kind == "claim" and status == "REVOKED":
            claim = await reg.get_claim_by_certificate(conn, cert.id)
            if claim is not None and claim.revoked_at is None:
                await reg.revoke_claim(conn, claim.id, time.time())
        updated = await reg.get_certificate(conn, cert.id)
        await act.record(conn, previous=cert.status, kind=cert.kind, thing=cert.thing_name)
    assert updated is not None
    return updated


async def delete_thing(db: Database, name: str) -> list[str]:
    """Delete a thing and deactivate its certificates (they authenticated as that thing).
    Returns the ids of the certificates deactivated. Audited as ``thing.delete``."""
    now = time.time()
    async with audited(db, "thing.delete", name) as act, db.transaction() as conn:
        if await reg.get_thing(conn, name) is None:
            raise AdminNotFound(f"thing {name} does not exist; see `lantern things list`")
        certs = await reg.list_certificates(conn, None, thing_name=name)
        changed = []
        for cert in certs:
            if cert.status in ("ACTIVE", "PENDING_ACTIVATION"):
                await reg.set_certificate_status(conn, cert.id, "INACTIVE", now)
                changed.append(cert.id)
        await reg.delete_thing(conn, name)
        await act.record(conn, deactivated_certificates=changed)
    return changed


async def register_device_certificate(
    db: Database, thing_name: str, issued: IssuedCertificate, *, project: str = "default"
) -> reg.CertificateRecord:
    """Register a certificate the operator issued (e.g. ``lantern dev client-cert``) as the
    ACTIVE certificate of ``thing_name``, creating the thing if needed. The device must then
    connect with client id ``thing_name``. Audited as ``certificate.register``."""
    async with audited(db, "certificate.register", issued.certificate_id, thing=thing_name) as act:
        return await _register_device_certificate(db, act, thing_name, issued, project)


async def _register_device_certificate(
    db: Database,
    act: AuditedAction,
    thing_name: str,
    issued: IssuedCertificate,
    project: str,
) -> reg.CertificateRecord:
    from lantern.provisioning.template import THING_NAME_RE

    if not THING_NAME_RE.match(thing_name):
        raise AdminError(f"thing name {thing_name!r} is invalid (1-128 of a-z A-Z 0-9 : _ -)")
    now = time.time()
    record = reg.CertificateRecord(
        id=issued.certificate_id,
        pem=issued.certificate_pem,
        kind="device",
        status="ACTIVE",
        project=project,
        thing_name=thing_name,
        created_at=now,
        updated_at=now,
    )
    async with db.transaction() as conn:
        if await reg.get_thing(conn, thing_name) is None:
            await reg.insert_thing(
                conn,
                reg.ThingRecord(thing_name, project, {}, None, None, None, None, None, now, now),
            )
        await reg.insert_certificate(conn, record)
        await act.record(conn)
    return record
