"""Claims and provisioning templates.

Creating a claim (:func:`lantern.provisioning.admin.create_claim`, as ``lantern claims create``
and ``POST /v1/claims``) shows its private key once and offers a zip with the certificate, the
key and the CA, downloadable once by the same session within ten minutes (:mod:`..pickup`).
"""

from __future__ import annotations

import io
import zipfile

from starlette.responses import Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.pickup import PickupStore
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.errors import InvalidRequest, NotFound
from lantern.pki import KeyType
from lantern.provisioning import admin
from lantern.provisioning.queries import RegistryQueries

__all__ = ["add_routes"]


def claim_zip(claim_id: str, cert_pem: str, key_pem: str, ca_pem: bytes) -> bytes:
    """The files ``lantern claims create --out DIR`` writes, as a zip."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{claim_id}.pem", cert_pem)
        zf.writestr(f"{claim_id}.key", key_pem)
        zf.writestr("ca.pem", ca_pem)
    return out.getvalue()


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    registry = RegistryQueries(deps.db)
    pickups = PickupStore()

    async def claims_page(page: Page, flash: str = "") -> Response:
        context = page.base(
            "claims",
            claims=await registry.claims(),
            templates=await registry.templates(),
            flash=flash,
        )
        return render("claims.html", context, headers={"HX-Push-Url": "/console/claims"})

    @routes.get("/console/claims")
    async def claims(page: Page) -> Response:
        return await claims_page(page)

    @routes.post("/console/claims")
    async def create(page: Page) -> Response:
        template = page.field("template")
        if not template:
            raise InvalidRequest("choose a provisioning template")
        limit_text = page.field("device_limit")
        if limit_text and not limit_text.isdigit():
            raise InvalidRequest("device limit: a whole number, or empty for no limit")
        try:
            key_type = KeyType(page.field("key_type", "ec-p256"))
        except ValueError:
            raise InvalidRequest("key type: ec-p256 or rsa-2048") from None
        claim, issued = await admin.create_claim(
            deps.db,
            deps.ca,
            [template],
            description=page.field("description"),
            device_limit=int(limit_text) if limit_text else None,
            key_type=key_type,
        )
        assert issued.private_key_pem is not None
        body = claim_zip(
            claim.id, issued.certificate_pem, issued.private_key_pem, deps.ca.ca_file.read_bytes()
        )
        token = pickups.put(page.session.id_hash, f"claim-{claim.id}.zip", body)
        context = page.base("claims", claim=claim, private_key=issued.private_key_pem, token=token)
        return render("claim_created.html", context)

    @routes.get("/console/claims/download/{token}")
    async def download(page: Page) -> Response:
        item = pickups.take(page.request.path_params["token"], page.session.id_hash)
        if item is None:
            raise NotFound(
                "this download is gone: a claim's zip can be downloaded once, within ten "
                "minutes, by whoever created it. Create a new claim."
            )
        return Response(
            item.body,
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{item.filename}"',
                "Cache-Control": "no-store",
            },
        )

    @routes.post("/console/claims/{claim_id}/revoke")
    async def revoke(page: Page) -> Response:
        claim_id = page.request.path_params["claim_id"]
        await admin.revoke_claim(deps.db, claim_id)
        return await claims_page(page, f"Claim {claim_id} revoked: devices can no longer use it.")

    @routes.post("/console/templates/{name}")
    async def update_template(page: Page) -> Response:
        name = page.request.path_params["name"]
        if await registry.template(name) is None:
            raise NotFound(f"template {name} does not exist")
        enabled = page.field("enabled")
        hook = page.field("hook_url")
        if enabled in ("true", "false"):
            spec = admin.TemplateSpec(body=None, enabled=enabled == "true")
            await admin.update_template(deps.db, name, spec)
            done = f"Template {name} {'enabled' if enabled == 'true' else 'disabled'}."
        elif "hook_url" in page.form:
            data = {"preProvisioningHookUrl": hook or None}
            spec = admin.parse_template_spec(data, "hook URL")
            await admin.update_template(deps.db, name, spec, clear_hook=not hook)
            done = f"Template {name}: hook {'set' if hook else 'removed'}."
        else:
            raise InvalidRequest("nothing to change")
        return await claims_page(page, done)
