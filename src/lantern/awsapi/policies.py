"""Policies: CreatePolicy, GetPolicy, ListPolicies, DeletePolicy, AttachPolicy, DetachPolicy
(targets are certificates), ListAttachedPolicies — the documents of ``lantern policies``,
enforced by the same engine. Lantern keeps one version per policy (``1``)."""

from __future__ import annotations

import json
from typing import Any

from lantern.awsapi.common import AwsDeps, certificate_id_of, invalid, not_found, page
from lantern.awsapi.service import AwsService, Call
from lantern.gateway import accounts, policy_admin
from lantern.gateway.accounts import PolicyRecord
from lantern.iam.errors import AwsError

__all__ = ["register"]


def _document(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AwsError(
            "MalformedPolicyException", f"Policy document is not JSON: {exc}", 400
        ) from None


def register(iot: AwsService, deps: AwsDeps) -> None:
    def named(call: Call, p: PolicyRecord) -> dict[str, Any]:
        return {"policyName": p.name, "policyArn": call.arn(f"policy/{p.name}")}

    async def policy(name: str) -> PolicyRecord:
        found = await accounts.get_policy(deps.db, name)
        if found is None:
            raise not_found(f"Policy {name} does not exist")
        return found

    @iot.operation("CreatePolicy")
    async def create_policy(call: Call) -> dict[str, Any]:
        name, text = call.params["policyName"], call.params["policyDocument"]
        document = _document(text)
        try:
            await policy_admin.create_policy(deps.db, name, document)
        except policy_admin.PolicyConflict:
            raise AwsError(
                "ResourceAlreadyExistsException", f"Policy {name} already exists", 409
            ) from None
        except accounts.AccountError as exc:
            raise AwsError("MalformedPolicyException", str(exc), 400) from None
        return {
            "policyName": name,
            "policyArn": call.arn(f"policy/{name}"),
            "policyDocument": text,
            "policyVersionId": "1",
        }

    @iot.operation("GetPolicy")
    async def get_policy(call: Call) -> dict[str, Any]:
        p = await policy(call.params["policyName"])
        return {
            **named(call, p),
            "policyDocument": json.dumps(p.document),
            "defaultVersionId": "1",
            "creationDate": p.created_at,
            "lastModifiedDate": p.updated_at,
            "generationId": str(int(p.updated_at * 1000)),
        }

    @iot.operation("ListPolicies")
    async def list_policies(call: Call) -> dict[str, Any]:
        found = await accounts.list_policies(deps.db)
        if call.params.get("ascendingOrder") is False:
            found = list(reversed(found))
        chunk, marker = page(found, call.params.get("marker"), call.params.get("pageSize"))
        return {"policies": [named(call, p) for p in chunk], "nextMarker": marker}

    @iot.operation("DeletePolicy")
    async def delete_policy(call: Call) -> dict[str, Any]:
        name = call.params["policyName"]
        await policy(name)
        try:
            await policy_admin.delete_policy(deps.db, name)
        except policy_admin.PolicyConflict as exc:
            raise AwsError("DeleteConflictException", str(exc), 409) from None
        return {}

    @iot.operation("AttachPolicy")
    async def attach_policy(call: Call) -> dict[str, Any]:
        cert = certificate_id_of(call.params["target"])
        await policy_admin.attach_policy(deps.db, call.params["policyName"], cert)
        return {}

    @iot.operation("DetachPolicy")
    async def detach_policy(call: Call) -> dict[str, Any]:
        cert = certificate_id_of(call.params["target"])
        await policy_admin.detach_policy(deps.db, call.params["policyName"], cert)
        return {}

    @iot.operation("ListAttachedPolicies")
    async def list_attached_policies(call: Call) -> dict[str, Any]:
        target = call.params["target"]
        if not target.startswith("arn:") or ":cert/" not in target:
            raise invalid(
                f"target {target} is not a certificate ARN "
                "(Lantern attaches policies to certificates)"
            )
        cert = certificate_id_of(target)
        names = await policy_admin.attached_policies(deps.db, cert)
        chunk, marker = page(names, call.params.get("marker"), call.params.get("pageSize"))
        return {
            "policies": [{"policyName": n, "policyArn": call.arn(f"policy/{n}")} for n in chunk],
            "nextMarker": marker,
        }
