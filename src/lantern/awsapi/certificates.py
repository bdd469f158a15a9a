"""Certificates and their things: CreateKeysAndCertificate, CreateCertificateFromCsr,
DescribeCertificate, ListCertificates, UpdateCertificate, DeleteCertificate,
AttachThingPrincipal, DetachThingPrincipal, ListThingPrincipals, ListPrincipalThings.

Certificates are issued by Lantern's CA (AWS's "Amazon Root CA" role). A Lantern device
certificate is attached to at most one thing (the thing it connects as, with that client id):
attaching it to a second thing is an InvalidRequestException. INACTIVE and REVOKED close the
certificate's live connections at once (and the gateway's watcher does within a second
whoever changes the status).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from lantern.awsapi.common import (
    AwsDeps,
    certificate_id_of,
    decode_token,
    encode_token,
    invalid,
    not_found,
    page,
    page_size,
)
from lantern.awsapi.service import AwsService, Call
from lantern.errors import LanternError
from lantern.iam.errors import AwsError
from lantern.pki import load_certificate
from lantern.provisioning import admin, registry
from lantern.provisioning.queries import CertificateRecord, RegistryQueries

__all__ = ["register"]

_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")


def _state_error(exc: LanternError) -> AwsError:
    return AwsError("CertificateStateException", str(exc), 406)


def register(iot: AwsService, deps: AwsDeps) -> None:
    queries = RegistryQueries(deps.db)

    async def certificate(cert_id: str) -> CertificateRecord:
        if not cert_id or len(cert_id) != 64:
            raise invalid(f"certificateId {cert_id!r} must be 64 hex characters")
        try:
            return await admin.find_certificate(deps.db, cert_id)
        except admin.AdminNotFound:
            raise not_found(f"The certificate {cert_id} does not exist") from None

    def summary(call: Call, c: CertificateRecord) -> dict[str, Any]:
        return {
            "certificateArn": call.arn(f"cert/{c.id}"),
            "certificateId": c.id,
            "status": c.status,
            "certificateMode": "DEFAULT",
            "creationDate": c.created_at,
        }

    async def create(call: Call, csr: str | None) -> dict[str, Any]:
        active = bool(call.params.get("setAsActive", False))
        record, issued = await registry.create_certificate(
            deps.db, deps.ca, active=active, csr_pem=csr
        )
        out: dict[str, Any] = {
            "certificateArn": call.arn(f"cert/{record.id}"),
            "certificateId": record.id,
            "certificatePem": record.pem,
        }
        if issued.private_key_pem is not None:
            public = issued.certificate.public_key().public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
            )
            out["keyPair"] = {"PublicKey": public.decode(), "PrivateKey": issued.private_key_pem}
        return out

    @iot.operation("CreateKeysAndCertificate")
    async def create_keys_and_certificate(call: Call) -> dict[str, Any]:
        return await create(call, None)

    @iot.operation("CreateCertificateFromCsr")
    async def create_certificate_from_csr(call: Call) -> dict[str, Any]:
        return await create(call, call.params["certificateSigningRequest"])

    @iot.operation("DescribeCertificate")
    async def describe_certificate(call: Call) -> dict[str, Any]:
        c = await certificate(call.params["certificateId"])
        x509 = load_certificate(c.pem)
        return {
            "certificateDescription": {
                **summary(call, c),
                "caCertificateId": None,
                "certificatePem": c.pem,
                "ownedBy": call.account,
                "lastModifiedDate": c.updated_at,
                "customerVersion": 1,
                "generationId": str(int(c.updated_at * 1000)),
                "validity": {
                    "notBefore": x509.not_valid_before_utc.timestamp(),
                    "notAfter": x509.not_valid_after_utc.timestamp(),
                },
            }
        }

    @iot.operation("ListCertificates")
    async def list_certificates(call: Call) -> dict[str, Any]:
        p = call.params
        size = page_size(p.get("pageSize"))
        after = None
        if p.get("marker"):
            created, cert_id = decode_token(p["marker"], 2)
            try:
                after = (float(created), cert_id)
            except ValueError:
                raise invalid("the marker is invalid") from None
        ascending = bool(p.get("ascendingOrder", False))
        certs = await queries.certificates_page(after, size + 1, ascending=ascending)
        chunk = certs[:size]
        last = chunk[-1] if chunk else None
        marker = (
            encode_token(repr(last.created_at), last.id)
            if last is not None and len(certs) > size
            else None
        )
        return {"certificates": [summary(call, c) for c in chunk], "nextMarker": marker}

    @iot.operation("UpdateCertificate")
    async def update_certificate(call: Call) -> dict[str, Any]:
        c = await certificate(call.params["certificateId"])
        status = call.params["newStatus"]
        if status not in _STATUSES:
            raise invalid(f"newStatus {status} is not supported: use one of {_STATUSES}")
        if c.status == status:
            return {}
        try:
            await admin.set_certificate_status(deps.db, c.id, status, require_thing=False)
        except admin.AdminConflict as exc:
            raise _state_error(exc) from None
        if status != "ACTIVE" and deps.kick is not None:
            deps.kick([c.id])
        return {}

    @iot.operation("DeleteCertificate")
    async def delete_certificate(call: Call) -> dict[str, Any]:
        c = await certificate(call.params["certificateId"])
        if c.status == "ACTIVE":
            raise _state_error(
                LanternError(f"Certificate {c.id} is ACTIVE: deactivate it before deleting")
            )
        try:
            await registry.delete_certificate(deps.db, c.id)
        except registry.CertificateInUse as exc:
            raise AwsError("DeleteConflictException", str(exc), 409) from None
        return {}

    @iot.operation("AttachThingPrincipal")
    async def attach_thing_principal(call: Call) -> dict[str, Any]:
        cert_id = certificate_id_of(call.params["principal"])
        await certificate(cert_id)
        thing = call.params["thingName"]
        if await queries.thing(thing) is None:
            raise not_found(f"Thing {thing} cannot be found.")
        try:
            await registry.attach_certificate(deps.db, thing, cert_id)
        except admin.AdminConflict as exc:
            raise invalid(str(exc)) from None
        return {}

    @iot.operation("DetachThingPrincipal")
    async def detach_thing_principal(call: Call) -> dict[str, Any]:
        cert_id = certificate_id_of(call.params["principal"])
        await certificate(cert_id)
        await registry.detach_certificate(deps.db, call.params["thingName"], cert_id)
        return {}

    @iot.operation("ListThingPrincipals")
    async def list_thing_principals(call: Call) -> dict[str, Any]:
        thing = call.params["thingName"]
        found = await queries.thing(thing)
        if found is None:
            raise not_found(f"Thing {thing} cannot be found.")
        arns = [call.arn(f"cert/{c.id}") for c in found.certificates]
        chunk, token = page(arns, call.params.get("nextToken"), call.params.get("maxResults"))
        return {"principals": chunk, "nextToken": token}

    @iot.operation("ListPrincipalThings")
    async def list_principal_things(call: Call) -> dict[str, Any]:
        c = await certificate(certificate_id_of(call.params["principal"]))
        things = [c.thing_name] if c.thing_name else []
        chunk, token = page(things, call.params.get("nextToken"), call.params.get("maxResults"))
        return {"things": chunk, "nextToken": token}
