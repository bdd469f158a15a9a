"""Thing groups: CreateThingGroup, DescribeThingGroup, ListThingGroups, DeleteThingGroup,
AddThingToThingGroup, RemoveThingFromThingGroup, ListThingsInThingGroup — Lantern's static
groups (``lantern groups``, the targets of deployments).

Lantern's groups are flat and carry a description only: a ``parentGroupName``, group
attributes or dynamic groups are InvalidRequestException; every group is at version 1.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from lantern.awsapi.common import AwsDeps, invalid, not_found, page
from lantern.awsapi.service import AwsService, Call
from lantern.iam.errors import AwsError
from lantern.jobs.catalog import ThingGroups
from lantern.jobs.clock import SystemClock
from lantern.jobs.errors import JobsConflict, JobsNotFound
from lantern.jobs.queries import JobsQueries

__all__ = ["register"]

_IDS = uuid.UUID("0b6c1d52-2a6f-4c1e-8f43-67726f757073")


def _named(params: dict[str, Any], name_key: str, arn_key: str, kind: str) -> str:
    name = params.get(name_key)
    arn = params.get(arn_key)
    if name:
        return str(name)
    if arn:
        resource = str(arn).split(":", 5)[-1]
        prefix = f"{kind}/"
        if not resource.startswith(prefix):
            raise invalid(f"{arn_key} {arn} is not a {kind} ARN")
        return resource[len(prefix) :]
    raise invalid(f"give {name_key} or {arn_key}")


def register(iot: AwsService, deps: AwsDeps) -> None:
    groups = ThingGroups(deps.db, SystemClock())
    queries = JobsQueries(deps.db)

    def arn(call: Call, name: str) -> str:
        return call.arn(f"thinggroup/{name}")

    async def described(name: str) -> tuple[Any, list[str]]:
        try:
            return await queries.group(name)
        except JobsNotFound:
            raise not_found(f"Thing group {name} does not exist") from None

    @iot.operation("CreateThingGroup")
    async def create_thing_group(call: Call) -> dict[str, Any]:
        name = call.params["thingGroupName"]
        if call.params.get("parentGroupName"):
            raise invalid("Lantern's thing groups have no parent group (parentGroupName)")
        props = call.params.get("thingGroupProperties") or {}
        if (props.get("attributePayload") or {}).get("attributes"):
            raise invalid("Lantern's thing groups have no attributes (attributePayload)")
        description = str(props.get("thingGroupDescription") or "")
        try:
            await groups.create(name, description)
        except JobsConflict:
            group, _ = await described(name)
            if group.description != description:
                raise AwsError(
                    "ResourceAlreadyExistsException",
                    f"Thing group {name} already exists with a different description",
                    409,
                ) from None
        return {
            "thingGroupName": name,
            "thingGroupArn": arn(call, name),
            "thingGroupId": str(uuid.uuid5(_IDS, name)),
        }

    @iot.operation("DescribeThingGroup")
    async def describe_thing_group(call: Call) -> dict[str, Any]:
        name = call.params["thingGroupName"]
        group, _ = await described(name)
        return {
            "thingGroupName": name,
            "thingGroupId": str(uuid.uuid5(_IDS, name)),
            "thingGroupArn": arn(call, name),
            "version": 1,
            "thingGroupProperties": {"thingGroupDescription": group.description},
            "thingGroupMetadata": {"creationDate": group.created_at},
        }

    @iot.operation("ListThingGroups")
    async def list_thing_groups(call: Call) -> dict[str, Any]:
        p = call.params
        found = await queries.list_groups()
        if p.get("parentGroup"):
            await described(p["parentGroup"])
            found = []  # flat groups: none has a parent
        prefix = p.get("namePrefixFilter")
        if prefix:
            found = [g for g in found if g.name.startswith(prefix)]
        chunk, token = page(found, p.get("nextToken"), p.get("maxResults"))
        return {
            "thingGroups": [{"groupName": g.name, "groupArn": arn(call, g.name)} for g in chunk],
            "nextToken": token,
        }

    @iot.operation("DeleteThingGroup")
    async def delete_thing_group(call: Call) -> dict[str, Any]:
        if call.params.get("expectedVersion") not in (None, 1):
            raise AwsError("VersionConflictException", "The thing group version is 1", 409)
        # AWS: deleting a group that does not exist succeeds.
        with contextlib.suppress(JobsNotFound):
            await groups.delete(call.params["thingGroupName"])
        return {}

    @iot.operation("AddThingToThingGroup")
    async def add_thing_to_thing_group(call: Call) -> dict[str, Any]:
        group = _named(call.params, "thingGroupName", "thingGroupArn", "thinggroup")
        thing = _named(call.params, "thingName", "thingArn", "thing")
        await groups.add(group, [thing])
        return {}

    @iot.operation("RemoveThingFromThingGroup")
    async def remove_thing_from_thing_group(call: Call) -> dict[str, Any]:
        group = _named(call.params, "thingGroupName", "thingGroupArn", "thinggroup")
        thing = _named(call.params, "thingName", "thingArn", "thing")
        await groups.remove(group, [thing])
        return {}

    @iot.operation("ListThingsInThingGroup")
    async def list_things_in_thing_group(call: Call) -> dict[str, Any]:
        _, members = await described(call.params["thingGroupName"])
        chunk, token = page(members, call.params.get("nextToken"), call.params.get("maxResults"))
        return {"things": chunk, "nextToken": token}
