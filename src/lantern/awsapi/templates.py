"""Fleet provisioning templates: Create/Describe/List/Update/DeleteProvisioningTemplate — the
templates of ``lantern templates``, used by claim certificates over MQTT.

Differences from AWS: the pre-provisioning hook is an http(s) URL that Lantern calls (given as
``preProvisioningHook.targetArn``), not a Lambda ARN; ``provisioningRoleArn`` is accepted and
not kept (Lantern needs no role); templates are ``FLEET_PROVISIONING`` only, and one version
(``defaultVersionId`` is Lantern's template version).
"""

from __future__ import annotations

import json
from typing import Any

from lantern.awsapi.common import AwsDeps, invalid, not_found, page
from lantern.awsapi.service import AwsService, Call
from lantern.iam.errors import AwsError
from lantern.provisioning import admin, registry
from lantern.provisioning.queries import RegistryQueries, TemplateRecord

__all__ = ["register"]


def _hook(params: dict[str, Any]) -> str | None:
    hook = params.get("preProvisioningHook")
    if hook is None:
        return None
    target = hook.get("targetArn") if isinstance(hook, dict) else None
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        raise invalid(
            "preProvisioningHook.targetArn must be an http(s) URL: Lantern calls a URL, not a "
            "Lambda function"
        )
    return target


def _body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise invalid(f"templateBody is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("templateBody must be a JSON object")
    return body


def register(iot: AwsService, deps: AwsDeps) -> None:
    queries = RegistryQueries(deps.db)

    def summary(call: Call, t: TemplateRecord) -> dict[str, Any]:
        return {
            "templateArn": call.arn(f"provisioningtemplate/{t.name}"),
            "templateName": t.name,
            "description": t.description,
            "creationDate": t.created_at,
            "lastModifiedDate": t.updated_at,
            "enabled": t.enabled,
            "type": "FLEET_PROVISIONING",
        }

    async def template(name: str) -> TemplateRecord:
        found = await queries.template(name)
        if found is None:
            raise not_found(f"The provisioning template {name} does not exist")
        return found

    @iot.operation("CreateProvisioningTemplate")
    async def create_provisioning_template(call: Call) -> dict[str, Any]:
        p = call.params
        if p.get("type", "FLEET_PROVISIONING") != "FLEET_PROVISIONING":
            raise invalid("Lantern's templates are of type FLEET_PROVISIONING only")
        spec = admin.TemplateSpec(
            body=_body(p["templateBody"]),
            description=p.get("description"),
            enabled=p.get("enabled", False),
            hook_url=_hook(p),
        )
        name = p["templateName"]
        try:
            record = await admin.create_template(deps.db, name, spec)
        except admin.AdminConflict:
            raise AwsError(
                "ResourceAlreadyExistsException", f"Template {name} already exists", 409
            ) from None
        return {
            "templateArn": call.arn(f"provisioningtemplate/{name}"),
            "templateName": name,
            "defaultVersionId": record.version,
        }

    @iot.operation("DescribeProvisioningTemplate")
    async def describe_provisioning_template(call: Call) -> dict[str, Any]:
        t = await template(call.params["templateName"])
        hook = t.pre_provisioning_hook_url
        return {
            **summary(call, t),
            "defaultVersionId": t.version,
            "templateBody": json.dumps(t.body),
            "preProvisioningHook": None if hook is None else {"targetArn": hook},
        }

    @iot.operation("ListProvisioningTemplates")
    async def list_provisioning_templates(call: Call) -> dict[str, Any]:
        found = await queries.templates()
        chunk, token = page(found, call.params.get("nextToken"), call.params.get("maxResults"))
        return {"templates": [summary(call, t) for t in chunk], "nextToken": token}

    @iot.operation("UpdateProvisioningTemplate")
    async def update_provisioning_template(call: Call) -> dict[str, Any]:
        p = call.params
        name = p["templateName"]
        current = await template(name)
        version = p.get("defaultVersionId")
        if version is not None and version != current.version:
            raise invalid(f"template {name} has one version, {current.version}")
        spec = admin.TemplateSpec(
            body=None, description=p.get("description"), enabled=p.get("enabled"), hook_url=_hook(p)
        )
        await admin.update_template(
            deps.db, name, spec, clear_hook=bool(p.get("removePreProvisioningHook"))
        )
        return {}

    @iot.operation("DeleteProvisioningTemplate")
    async def delete_provisioning_template(call: Call) -> dict[str, Any]:
        name = call.params["templateName"]
        await template(name)
        try:
            await registry.delete_template(deps.db, name)
        except registry.TemplateInUse as exc:
            raise AwsError("DeleteConflictException", str(exc), 409) from None
        return {}
