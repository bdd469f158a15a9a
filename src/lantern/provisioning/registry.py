"""Registry actions the AWS IoT control plane needs beyond ``lantern things|certs``: creating
and updating things, certificates created by the operator (CreateKeysAndCertificate,
CreateCertificateFromCsr), attaching a certificate to a thing, deleting a certificate.

Lantern attaches a device certificate to at most one thing (the thing it connects as); AWS
allows several. Errors are :mod:`lantern.provisioning.admin`'s (:class:`AdminError`,
:class:`AdminNotFound`, :class:`AdminConflict`) and :class:`CertificateInUse` for a certificate
that cannot be deleted in its state. Every change is audited.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from lantern.audit import audited
from lantern.pki import CertificateAuthority, IssuedCertificate, KeyType, PKIError, load_csr
from lantern.provisioning.admin import AdminConflict, AdminError, AdminNotFound
from lantern.provisioning.template import THING_NAME_RE
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.registry import access, devices

__all__ = [
    "CertificateInUse",
    "TemplateInUse",
    "ThingVersionConflict",
    "attach_certificate",
    "create_certificate",
    "create_thing",
    "delete_certificate",
    "delete_template",
    "detach_certificate",
    "update_thing",
]


class CertificateInUse(AdminConflict):
    """The certificate is ACTIVE, attached to a thing, or has policies: it cannot be deleted."""


class ThingVersionConflict(AdminConflict):
    """The thing is not at the version the request expects."""


class TemplateInUse(AdminConflict):
    """A live claim may still use the template: it cannot be deleted."""


def _check_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    for key, value in attributes.items():
        if not isinstance(value, str):
            raise AdminError(f"attribute {key}: the value must be a string")
    return {k: str(v) for k, v in attributes.items()}


async def create_thing(
    db: Database, name: str, attributes: Mapping[str, object], project: str = "default"
) -> reg.ThingRecord:
    """A new thing with ``attributes`` (audited as ``thing.create``)."""
    async with audited(db, "thing.create", name) as act:
        if not THING_NAME_RE.match(name):
            raise AdminError(f"thing name {name!r} is invalid (1-128 of a-z A-Z 0-9 : _ -)")
        attrs = _check_attributes(attributes)
        now = time.time()
        record = reg.ThingRecord(name, project, attrs, None, None, None, None, None, now, now)
        async with db.transaction() as conn:
            if await reg.get_thing(conn, name) is not None:
                raise AdminConflict(f"thing {name} already exists")
            await reg.insert_thing(conn, record)
            await act.record(conn, attributes=len(attrs))
        return record


async def update_thing(
    db: Database,
    name: str,
    attributes: Mapping[str, object] | None,
    *,
    merge: bool,
    expected_version: int | None = None,
) -> reg.ThingRecord:
    """Replace a thing's attributes, or (``merge``) add and change them, an empty value removing
    one; the thing's version goes up by one. With ``expected_version``, only if the thing is at
    that version (:class:`ThingVersionConflict`). Audited as ``thing.update``."""
    async with audited(db, "thing.update", name) as act, db.transaction() as conn:
        thing = await reg.get_thing(conn, name)
        if thing is None:
            raise AdminNotFound(f"thing {name} does not exist")
        if expected_version is not None and expected_version != thing.version:
            raise ThingVersionConflict(
                f"thing {name} is at version {thing.version}, not {expected_version}"
            )
        attrs = dict(thing.attributes)
        if attributes is not None:
            given = _check_attributes(attributes)
            attrs = {**attrs, **given} if merge else dict(given)
            attrs = {k: v for k, v in attrs.items() if v != ""}
        await reg.update_thing(
            conn, name, attributes=attrs, updated_at=time.time(), version=thing.version + 1
        )
        await act.record(conn, attributes=len(attrs), merge=merge)
        updated = await reg.get_thing(conn, name)
    assert updated is not None
    return updated


async def create_certificate(
    db: Database,
    ca: CertificateAuthority,
    *,
    active: bool,
    csr_pem: str | None = None,
    project: str = "default",
) -> tuple[reg.CertificateRecord, IssuedCertificate]:
    """A device certificate attached to no thing yet, ACTIVE or INACTIVE: with a new key pair
    (returned, never stored) or signed from ``csr_pem`` (audited as ``certificate.create``)."""
    async with audited(db, "certificate.create", csr=csr_pem is not None) as act:
        try:
            if csr_pem is None:
                issued = ca.issue("Lantern device", KeyType.RSA_2048)
            else:
                issued = ca.sign_csr(load_csr(csr_pem))
        except PKIError as exc:
            raise AdminError(f"certificateSigningRequest: {exc}") from None
        now = time.time()
        record = reg.CertificateRecord(
            id=issued.certificate_id,
            pem=issued.certificate_pem,
            kind="device",
            status="ACTIVE" if active else "INACTIVE",
            project=project,
            thing_name=None,
            created_at=now,
            updated_at=now,
        )
        act.target = issued.certificate_id
        async with db.transaction() as conn:
            if await reg.get_certificate(conn, issued.certificate_id) is not None:
                raise AdminConflict("this certificate is registered already")
            await reg.insert_certificate(conn, record)
            await act.record(conn, status=record.status)
        return record, issued


async def _device_certificate(db: Database, certificate_id: str) -> reg.CertificateRecord:
    async with db.connect() as conn:
        cert = await reg.get_certificate(conn, certificate_id)
    if cert is None:
        raise AdminNotFound(f"certificate {certificate_id} does not exist")
    if cert.kind != "device":
        raise AdminError(f"certificate {certificate_id} is a claim certificate")
    return cert


async def attach_certificate(db: Database, thing: str, certificate_id: str) -> None:
    """Attach a device certificate to a thing (it then connects as that thing). Attaching it
    again to the same thing does nothing; to another thing is a conflict."""
    async with audited(db, "certificate.attach", certificate_id, thing=thing) as act:
        cert = await _device_certificate(db, certificate_id)
        if cert.thing_name == thing:
            return
        if cert.thing_name is not None:
            raise AdminConflict(
                f"certificate {certificate_id} is attached to thing {cert.thing_name}; Lantern "
                "attaches a certificate to one thing: detach it first"
            )
        async with db.transaction() as conn:
            if await reg.get_thing(conn, thing) is None:
                raise AdminNotFound(f"thing {thing} does not exist")
            await reg.set_certificate_status(
                conn, certificate_id, cert.status, time.time(), thing_name=thing
            )
            await act.record(conn)


async def detach_certificate(db: Database, thing: str, certificate_id: str) -> None:
    """Detach a certificate from ``thing`` (nothing if it is not attached to it)."""
    async with audited(db, "certificate.detach", certificate_id, thing=thing) as act:
        cert = await _device_certificate(db, certificate_id)
        async with db.transaction() as conn:
            if await reg.get_thing(conn, thing) is None:
                raise AdminNotFound(f"thing {thing} does not exist")
            if cert.thing_name == thing:
                await devices.detach_certificate(conn, certificate_id, time.time())
            await act.record(conn)


async def delete_certificate(db: Database, certificate_id: str) -> None:
    """Delete an INACTIVE or REVOKED device certificate attached to no thing and no policy."""
    async with audited(db, "certificate.delete", certificate_id) as act:
        cert = await _device_certificate(db, certificate_id)
        if cert.status not in ("INACTIVE", "REVOKED"):
            raise CertificateInUse(
                f"certificate {certificate_id} is {cert.status}: deactivate it before deleting"
            )
        async with db.transaction() as conn:
            if cert.thing_name is not None:
                raise CertificateInUse(
                    f"certificate {certificate_id} is attached to thing {cert.thing_name}; "
                    "detach it before deleting"
                )
            if await access.certificate_policy_names(conn, certificate_id):
                raise CertificateInUse(
                    f"certificate {certificate_id} has policies attached; detach them first"
                )
            await reg.delete_certificates(conn, [certificate_id])
            await act.record(conn)


async def delete_template(db: Database, name: str) -> None:
    """Delete a template no live claim may use (audited as ``template.delete``)."""
    from lantern.store.registry import claims

    async with audited(db, "template.delete", name) as act, db.transaction() as conn:
        if await reg.get_template(conn, name) is None:
            raise AdminNotFound(f"template {name} does not exist; see `lantern templates list`")
        users = await conn.run_sync(lambda c: claims.template_users_sync(c, name))
        if users:
            raise TemplateInUse(
                f"template {name} is allowed to claim(s) {', '.join(users[:5])}; revoke them "
                "first (`lantern claims revoke ID`)"
            )
        await claims.delete_template(conn, name)
        await act.record(conn)
