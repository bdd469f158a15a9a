"""Things: CreateThing, DescribeThing, ListThings, UpdateThing, DeleteThing.

Lantern has no thing types nor billing groups (naming one is ResourceNotFoundException). A
thing's ``version`` starts at 1 and goes up with each UpdateThing; an ``expectedVersion`` that
differs is a VersionConflictException.
"""

from __future__ import annotations

from typing import Any

from lantern.awsapi.common import (
    AwsDeps,
    decode_token,
    encode_token,
    invalid,
    not_found,
    page_size,
    thing_id,
)
from lantern.awsapi.service import AwsService, Call
from lantern.iam.errors import AwsError
from lantern.provisioning import admin, registry
from lantern.provisioning.queries import RegistryQueries, ThingRecord

__all__ = ["register"]

_SCAN_BATCH = 1000


def _no_types(params: dict[str, Any]) -> None:
    if params.get("thingTypeName"):
        raise not_found(f"Thing type {params['thingTypeName']} does not exist (Lantern has none)")
    if params.get("billingGroupName"):
        raise not_found(f"Billing group {params['billingGroupName']} does not exist")


def _version_conflict(message: str) -> AwsError:
    return AwsError("VersionConflictException", message, 409)


def _attributes(params: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    payload = params.get("attributePayload")
    if payload is None:
        return None, False
    if not isinstance(payload, dict):
        raise invalid("attributePayload must be an object")
    attributes = payload.get("attributes", {})
    if not isinstance(attributes, dict):
        raise invalid("attributePayload.attributes must be an object")
    return attributes, bool(payload.get("merge", False))


def register(iot: AwsService, deps: AwsDeps) -> None:
    queries = RegistryQueries(deps.db)

    def listed(call: Call, t: ThingRecord) -> dict[str, Any]:
        return {
            "thingName": t.name,
            "thingArn": call.arn(f"thing/{t.name}"),
            "attributes": t.attributes,
            "version": t.version,
        }

    @iot.operation("CreateThing")
    async def create_thing(call: Call) -> dict[str, Any]:
        name = call.params["thingName"]
        _no_types(call.params)
        attributes, _ = _attributes(call.params)
        existing = await queries.thing(name)
        if existing is not None:
            if existing.thing.attributes != (attributes or {}):
                raise AwsError(
                    "ResourceAlreadyExistsException",
                    f"Thing {name} already exists in account with different attributes",
                    409,
                )
        else:
            await registry.create_thing(deps.db, name, attributes or {})
        return {"thingName": name, "thingArn": call.arn(f"thing/{name}"), "thingId": thing_id(name)}

    @iot.operation("DescribeThing")
    async def describe_thing(call: Call) -> dict[str, Any]:
        name = call.params["thingName"]
        found = await queries.thing(name)
        if found is None:
            raise not_found(f"Thing {name} cannot be found.")
        return {
            "defaultClientId": name,
            "thingName": name,
            "thingId": thing_id(name),
            "thingArn": call.arn(f"thing/{name}"),
            "attributes": found.thing.attributes,
            "version": found.thing.version,
        }

    @iot.operation("ListThings")
    async def list_things(call: Call) -> dict[str, Any]:
        p = call.params
        size = page_size(p.get("maxResults"))
        if p.get("thingTypeName"):
            return {"things": []}  # Lantern has no thing types
        attribute, value = p.get("attributeName"), p.get("attributeValue")
        prefix = bool(p.get("usePrefixAttributeValue"))

        def matches(t: ThingRecord) -> bool:
            if attribute is None:
                return True
            got = t.attributes.get(attribute)
            if got is None or value is None:
                return got is not None
            return got.startswith(value) if prefix else got == value

        # Keyset pages by name: a filter scans batches until the page (and one more) is found.
        after = decode_token(p["nextToken"], 1)[0] if p.get("nextToken") else None
        found: list[ThingRecord] = []
        batch = size + 1 if attribute is None else _SCAN_BATCH
        while len(found) <= size:
            things = await queries.things_page(after, batch)
            found.extend(t for t in things if matches(t))
            if len(things) < batch:
                break
            after = things[-1].name
        chunk = found[:size]
        token = encode_token(chunk[-1].name) if len(found) > size else None
        return {"things": [listed(call, t) for t in chunk], "nextToken": token}

    @iot.operation("UpdateThing")
    async def update_thing(call: Call) -> dict[str, Any]:
        name = call.params["thingName"]
        _no_types(call.params)
        attributes, merge = _attributes(call.params)
        if await queries.thing(name) is None:
            raise not_found(f"Thing {name} cannot be found.")
        try:
            await registry.update_thing(
                deps.db,
                name,
                attributes,
                merge=merge,
                expected_version=call.params.get("expectedVersion"),
            )
        except registry.ThingVersionConflict as exc:
            raise _version_conflict(str(exc)) from None
        return {}

    @iot.operation("DeleteThing")
    async def delete_thing(call: Call) -> dict[str, Any]:
        name = call.params["thingName"]
        found = await queries.thing(name)
        if found is None:
            return {}  # AWS: deleting a thing that does not exist succeeds
        expected = call.params.get("expectedVersion")
        if expected is not None and expected != found.thing.version:
            raise _version_conflict(
                f"thing {name} is at version {found.thing.version}, not {expected}"
            )
        attached = [c for c in found.certificates if c.kind == "device"]
        if attached:
            raise invalid(
                f"Cannot delete thing {name}: it has {len(attached)} principal(s) attached; "
                "detach them with DetachThingPrincipal first"
            )
        await admin.delete_thing(deps.db, name)
        return {}
