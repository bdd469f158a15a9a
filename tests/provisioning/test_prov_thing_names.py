"""RegisterThing tells the gateway's set of thing names about a new thing before it replies, so
no anonymous client can use the thing's topics between its creation and the next poll."""

from __future__ import annotations

import json

from lantern.gateway.things import ThingNames
from support.provisioning_env import Env, call

CREATE = "$aws/certificates/create/json"
TEMPLATE = "DefaultProvisioningTemplate"
PARAMS = {"SerialNumber": "12345", "Manufacturer": "acme", "Name": "n", "Model": "m"}


async def test_register_thing_adds_the_name_before_replying(env: Env) -> None:
    names = ThingNames(env.db)
    await names.ensure_loaded()
    env.service.on_thing = names.add
    created = await call(
        env.service.create_keys_and_certificate, CREATE, b"{}", env.claim, fmt="json"
    )
    token = json.loads(created.replies[0].payload)["certificateOwnershipToken"]
    payload = json.dumps({"certificateOwnershipToken": token, "parameters": PARAMS}).encode()
    result = await call(
        env.service.register_thing,
        f"$aws/provisioning-templates/{TEMPLATE}/provision/json",
        payload,
        env.claim,
        template=TEMPLATE,
        fmt="json",
    )
    (reply,) = result.replies
    assert reply.topic.endswith("/accepted"), reply.payload
    thing = json.loads(reply.payload)["thingName"]
    assert thing in names and names.covers(f"{thing}/data") and names.covers(thing)
