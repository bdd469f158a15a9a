"""The read side shared by the HTTP API and the command line: claims with how many things each
registered (one statement however many claims), a thing with its certificates, certificates by
prefix; MQTT users and policies. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from lantern.gateway import accounts
from lantern.provisioning import admin
from lantern.provisioning.queries import RegistryQueries
from lantern.store import Database
from support.provisioning_env import Env, call

CREATE = "$aws/certificates/create/json"
TEMPLATE = "DefaultProvisioningTemplate"
REGISTER = f"$aws/provisioning-templates/{TEMPLATE}/provision/json"


async def provision(env: Env, serial: str) -> dict[str, Any]:
    created = json.loads(
        (await call(env.service.create_keys_and_certificate, CREATE, b"{}", env.claim, fmt="json"))
        .replies[0]
        .payload
    )
    params = {"SerialNumber": serial, "Manufacturer": "m", "Name": "n", "Model": "x"}
    body = json.dumps(
        {"certificateOwnershipToken": created["certificateOwnershipToken"], "parameters": params}
    ).encode()
    reply = (
        await call(
            env.service.register_thing, REGISTER, body, env.claim, template=TEMPLATE, fmt="json"
        )
    ).replies[0]
    assert reply.topic.endswith("/accepted"), reply.payload
    return {**created, **json.loads(reply.payload)}


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db``'s async engine meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_claims_with_their_device_counts_in_one_statement(env: Env) -> None:
    first = await provision(env, "A")
    await provision(env, "B")
    unused = await env.new_claim()
    revoked = await env.new_claim()
    await admin.revoke_claim(env.db, revoked.claim_id)
    queries = RegistryQueries(env.db)
    with statements(env.db) as seen:
        summaries = await queries.claims()
    assert len(seen) == 1
    assert [(s.claim.id, s.devices) for s in summaries] == [
        (env.claim.claim_id, 2),
        (unused.claim_id, 0),
        (revoked.claim_id, 0),
    ]
    assert summaries[2].claim.revoked_at is not None
    assert summaries[0].claim.allowed_templates == (TEMPLATE,)
    one = await queries.claim(env.claim.claim_id)
    assert one is not None and one.devices == 2
    assert await queries.claim("claim-unknown") is None
    # A thing with its certificate; certificates by thing and status.
    detail = await queries.thing(first["thingName"])
    assert detail is not None and detail.thing.serial_number == "A"
    assert [(c.id, c.status) for c in detail.certificates] == [(first["certificateId"], "ACTIVE")]
    assert await queries.thing("nothing-here") is None
    active = await queries.certificates(status="ACTIVE")
    # The two claims' certificates (the revoked claim's is REVOKED) and the two devices'.
    assert sorted(c.kind for c in active) == ["claim", "claim", "device", "device"]
    names = [t.name for t in await queries.things()]
    assert len(names) == 2 and names == sorted(names) and first["thingName"] in names
    found = await admin.find_certificate(env.db, first["certificateId"][:10])
    assert found.id == first["certificateId"]


async def test_certificate_prefixes_are_matched_literally(env: Env) -> None:
    await provision(env, "A")
    for prefix in ("%%%%%%%%", "________"):
        try:
            await admin.find_certificate(env.db, prefix)
        except admin.AdminNotFound:
            continue
        raise AssertionError(f"{prefix!r} matched a certificate")


async def test_mqtt_users_and_policies(db: Database) -> None:
    statement = {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    await accounts.put_policy(db, "p1", document, project_wide=True)
    await accounts.create_mqtt_user(db, "zed", "a-long-password", policy_name="p1")
    await accounts.create_mqtt_user(db, "amy", "a-long-password")
    assert [(u.username, u.policy_name) for u in await accounts.list_mqtt_users(db)] == [
        ("amy", None),
        ("zed", "p1"),
    ]
    (policy,) = await accounts.list_policies(db)
    assert (policy.name, policy.project_wide, policy.document) == ("p1", True, document)
    assert await accounts.get_policy(db, "p1") == policy
    assert await accounts.get_policy(db, "p2") is None
