"""Fleet-provisioning admin routes: claims, templates, things and certificates (what
``lantern claims|templates|things|certs`` do, over HTTP).

Admin routes (``Authorization: Bearer <admin token>``)::

    GET    /v1/claims
    POST   /v1/claims                        {"templates": [..], "description"?, "deviceLimit"?,
                                              "keyType"?: "ec-p256"|"rsa-2048"} -> 201
    POST   /v1/claims/<id>/revoke            (404 unknown, 409 already revoked)
    GET    /v1/templates                     GET /v1/templates/<name>
    POST   /v1/templates                     {"templateName", "templateBody", "description"?,
                                              "enabled"?, "preProvisioningHookUrl"?} -> 201
    PATCH  /v1/templates/<name>              any of templateBody, description, enabled,
                                              preProvisioningHookUrl (null removes the hook)
    GET    /v1/things[?limit=N][&cursor=C]   by name, a page: {"things", "nextCursor"}
                                              (limit 1-1000, default 100; nextCursor null
                                              on the last page, else pass it as cursor)
    GET    /v1/things/<name>                 (with its certificates)
    DELETE /v1/things/<name>                 deactivates its certificates
    GET    /v1/certificates[?thing=T][&status=S][&limit=N][&cursor=C]
                                              oldest first, a page as for things:
                                              {"certificates", "nextCursor"}
    GET    /v1/certificates/<id or prefix>   (with the PEM and attached policy names)
    PUT    /v1/certificates/<id or prefix>   {"status": "ACTIVE"|"INACTIVE"|"REVOKED"}

``POST /v1/claims`` returns the claim's private key (``privateKey``) in its response and nowhere
else: the key is generated in memory, never stored, never logged; an operator who loses the
response creates a new claim. The response carries ``Cache-Control: no-store``.

Deactivated or revoked certificates (``PUT``, claim revocation, thing deletion) lose their live
MQTT connections within a second: the gateway's revocation watcher polls the registry.
Errors are JSON ``{"errorCode", "errorMessage"}``: 400 invalid input (the message names the
field), 401 without the admin token, 404 unknown, 409 conflicts with the current state.
The logic is :mod:`lantern.provisioning.admin`'s (changes) and
:mod:`lantern.provisioning.queries`' (reads); these routes only translate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lantern import jsonlimits
from lantern.api.admin_auth import read_body, require_admin
from lantern.api.paging import (
    decode_cursor,
    decode_time_id,
    encode_time_id,
    parse_limit,
    split_page,
)
from lantern.audit.auth_failures import AuthFailures
from lantern.errors import InvalidRequest, NotFound
from lantern.pki import CertificateAuthority, KeyType
from lantern.provisioning import admin
from lantern.provisioning.queries import (
    CERTIFICATE_STATUSES,
    CertificateRecord,
    ClaimSummary,
    RegistryQueries,
    TemplateRecord,
    ThingRecord,
)
from lantern.store import Database

__all__ = ["THINGS_DEFAULT_LIMIT", "THINGS_MAX_LIMIT", "build_provisioning_router"]

THINGS_DEFAULT_LIMIT = 100
THINGS_MAX_LIMIT = 1000


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def claim_json(summary: ClaimSummary) -> dict[str, Any]:
    claim, devices = summary.claim, summary.devices
    return {
        "claimId": claim.id,
        "certificateId": claim.certificate_id,
        "templates": list(claim.allowed_templates),
        "deviceLimit": claim.device_limit,
        "devices": devices,
        "description": claim.description,
        "createdAt": int(claim.created_at),
        "revokedAt": _ts(claim.revoked_at),
    }


def template_json(t: TemplateRecord) -> dict[str, Any]:
    return {
        "templateName": t.name,
        "description": t.description,
        "enabled": t.enabled,
        "templateBody": t.body,
        "preProvisioningHookUrl": t.pre_provisioning_hook_url,
        "version": t.version,
    }


def thing_json(t: ThingRecord) -> dict[str, Any]:
    return {
        "thingName": t.name,
        "serialNumber": t.serial_number,
        "manufacturer": t.manufacturer,
        "model": t.model,
        "deviceName": t.device_name,
        "templateName": t.template_name,
        "attributes": t.attributes,
        "createdAt": int(t.created_at),
    }


def certificate_json(c: CertificateRecord) -> dict[str, Any]:
    return {
        "certificateId": c.id,
        "kind": c.kind,
        "status": c.status,
        "thingName": c.thing_name,
        "createdAt": int(c.created_at),
        "updatedAt": int(c.updated_at),
    }


class _CreateClaim(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    templates: list[str] = Field(min_length=1)
    description: str = ""
    deviceLimit: int | None = Field(default=None, ge=1)
    keyType: Literal["ec-p256", "rsa-2048"] = "ec-p256"


class _SetStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    status: Literal["ACTIVE", "INACTIVE", "REVOKED"]


def _json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; :class:`InvalidRequest` otherwise."""
    try:
        data = jsonlimits.loads(raw)
    except jsonlimits.JSONTooDeep as exc:
        raise InvalidRequest(f"body: {exc}") from None
    except ValueError as exc:
        raise InvalidRequest(f"body: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: must be a JSON object")
    return data


def build_provisioning_router(
    db: Database,
    ca: CertificateAuthority,
    *,
    admin_token: Callable[[], str],
    auth_failures: AuthFailures | None = None,
) -> APIRouter:
    """The fleet-provisioning admin routes (claims, templates, things, certificates)."""
    admin_only = Depends(require_admin(admin_token, auth_failures))
    router = APIRouter(tags=["provisioning"], dependencies=[admin_only])
    queries = RegistryQueries(db)
    _claim_routes(router, db, ca, queries)
    _template_routes(router, db, queries)
    _thing_routes(router, db, queries)
    _certificate_routes(router, db, queries)
    return router


def _claim_routes(
    router: APIRouter, db: Database, ca: CertificateAuthority, queries: RegistryQueries
) -> None:
    @router.get("/v1/claims")
    async def list_claims() -> JSONResponse:
        claims = [claim_json(c) for c in await queries.claims()]
        return JSONResponse({"claims": claims})

    @router.post("/v1/claims")
    async def create_claim(request: Request) -> JSONResponse:
        body = read_body(_CreateClaim, await request.body())
        claim, issued = await admin.create_claim(
            db,
            ca,
            body.templates,
            description=body.description,
            device_limit=body.deviceLimit,
            key_type=KeyType(body.keyType),
        )
        return JSONResponse(
            {
                "claimId": claim.id,
                "certificateId": claim.certificate_id,
                "certificatePem": issued.certificate_pem,
                "privateKey": issued.private_key_pem,
                "caPem": ca.ca_file.read_text(),
                "templates": list(claim.allowed_templates),
            },
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @router.post("/v1/claims/{claim_id}/revoke")
    async def revoke_claim(claim_id: str) -> JSONResponse:
        await admin.revoke_claim(db, claim_id)
        summary = await queries.claim(claim_id)
        if summary is None:  # deleted meanwhile
            raise NotFound(f"claim {claim_id} does not exist")
        return JSONResponse(claim_json(summary))


def _template_routes(router: APIRouter, db: Database, queries: RegistryQueries) -> None:
    @router.get("/v1/templates")
    async def list_templates() -> JSONResponse:
        templates = await queries.templates()
        return JSONResponse({"templates": [template_json(t) for t in templates]})

    @router.get("/v1/templates/{name}")
    async def get_template(name: str) -> JSONResponse:
        template = await queries.template(name)
        if template is None:
            raise NotFound(f"template {name} does not exist")
        return JSONResponse(template_json(template))

    @router.post("/v1/templates")
    async def create_template(request: Request) -> JSONResponse:
        data = _json_object(await request.body())
        name = data.pop("templateName", None)
        if not isinstance(name, str):
            raise InvalidRequest("templateName: a string is required")
        if data.get("templateBody") is None:
            raise InvalidRequest("templateBody: an object is required")
        spec = admin.parse_template_spec(data, "body")
        template = await admin.create_template(db, name, spec)
        return JSONResponse(template_json(template), status_code=201)

    @router.patch("/v1/templates/{name}")
    async def update_template(name: str, request: Request) -> JSONResponse:
        data = _json_object(await request.body())
        if not data:
            raise InvalidRequest(f"body: give at least one of {', '.join(admin.TEMPLATE_FIELDS)}")
        clear_hook = "preProvisioningHookUrl" in data and data["preProvisioningHookUrl"] is None
        spec = admin.parse_template_spec(data, "body")
        template = await admin.update_template(db, name, spec, clear_hook=clear_hook)
        return JSONResponse(template_json(template))


def _thing_routes(router: APIRouter, db: Database, queries: RegistryQueries) -> None:
    @router.get("/v1/things")
    async def list_things(limit: str | None = None, cursor: str | None = None) -> JSONResponse:
        size = parse_limit(limit, THINGS_DEFAULT_LIMIT, THINGS_MAX_LIMIT)
        after = decode_cursor(cursor) if cursor else None
        things, next_cursor = split_page(
            await queries.things_page(after, size + 1), size, lambda t: t.name
        )
        return JSONResponse(
            {
                "things": [thing_json(t) for t in things],
                "nextCursor": next_cursor,
            }
        )

    @router.get("/v1/things/{name}")
    async def get_thing(name: str) -> JSONResponse:
        detail = await queries.thing(name)
        if detail is None:
            raise NotFound(f"thing {name} does not exist")
        certs = detail.certificates
        return JSONResponse(
            {
                **thing_json(detail.thing),
                "certificates": [{"certificateId": c.id, "status": c.status} for c in certs],
            }
        )

    @router.delete("/v1/things/{name}")
    async def delete_thing(name: str) -> JSONResponse:
        deactivated = await admin.delete_thing(db, name)
        return JSONResponse({"deactivatedCertificates": deactivated})


def _certificate_routes(router: APIRouter, db: Database, queries: RegistryQueries) -> None:
    async def certificate_out(cert: CertificateRecord) -> dict[str, Any]:
        policies = await queries.certificate_policy_names(cert.id)
        return {**certificate_json(cert), "certificatePem": cert.pem, "policyNames": policies}

    @router.get("/v1/certificates")
    async def list_certificates(
        thing: str | None = None,
        status: str | None = None,
        limit: str | None = None,
        cursor: str | None = None,
    ) -> JSONResponse:
        if status is not None and status not in CERTIFICATE_STATUSES:
            raise InvalidRequest(f"status: must be one of {', '.join(CERTIFICATE_STATUSES)}")
        size = parse_limit(limit, THINGS_DEFAULT_LIMIT, THINGS_MAX_LIMIT)
        after = decode_time_id(decode_cursor(cursor)) if cursor else None
        rows = await queries.certificates_page(
            after, size + 1, ascending=True, thing=thing, status=status
        )
        certs, next_cursor = split_page(rows, size, lambda c: encode_time_id(c.created_at, c.id))
        return JSONResponse(
            {"certificates": [certificate_json(c) for c in certs], "nextCursor": next_cursor}
        )

    @router.get("/v1/certificates/{id_or_prefix}")
    async def get_certificate(id_or_prefix: str) -> JSONResponse:
        return JSONResponse(await certificate_out(await admin.find_certificate(db, id_or_prefix)))

    @router.put("/v1/certificates/{id_or_prefix}")
    async def set_certificate_status(id_or_prefix: str, request: Request) -> JSONResponse:
        body = read_body(_SetStatus, await request.body())
        cert = await admin.set_certificate_status(db, id_or_prefix, body.status)
        return JSONResponse(await certificate_out(cert))
