"""Every administrative service function records its action (the functions the CLI and the HTTP
API both call), by the acting actor, with its target, and no secret reaches the log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lantern.audit import Actor, acting_as
from lantern.audit.queries import entry_json, read_page
from lantern.gateway import accounts
from lantern.ingest import tokens
from lantern.jobs.catalog import FirmwareCatalog, ThingGroups
from lantern.jobs.clock import ManualClock as JobsClock
from lantern.jobs.deployments import DeploymentService, DeploymentSpec
from lantern.pki import CertificateAuthority, KeyType
from lantern.provisioning import admin
from lantern.push.keys import KeyService
from lantern.push.scopes import schemes_allowed
from lantern.schedule import ManualClock, ScheduleService
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.objects import LocalObjectStore
from lantern.store.schedule import ScheduleStore

PASSWORD = "first-password-0xA1B2"
PASSWORD2 = "second-password-0xC3D4"
HOOK_SECRET = "hook-credential-E5F6"
TITLE = "Title-G7H8 take your pill"
MESSAGE = "Message-I9J0 about your health"
DEVICE_TOKEN = "ab" * 32
ENV_SECRET = "env-api-key-K1L2M3N4O5P6Q7R8"

EXPECTED = {
    "template.create",
    "template.update",
    "claim.create",
    "claim.revoke",
    "certificate.register",
    "certificate.update_status",
    "thing.delete",
    "policy.put",
    "mqtt_user.create",
    "mqtt_user.update_password",
    "mqtt_user.delete",
    "apikey.create",
    "apikey.rotate",
    "apikey.revoke",
    "schedule.create",
    "schedule.pause",
    "schedule.resume",
    "schedule.delete",
    "firmware.upload",
    "firmware.delete",
    "group.create",
    "group.add_things",
    "group.remove_things",
    "group.delete",
    "deployment.create",
    "deployment.cancel",
    "token.create",
    "token.revoke",
}


class Owner:
    def __init__(self, key_id: str) -> None:
        self.id = key_id
        self.scope = "external"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    authority, _ = CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"))
    return authority


async def _image() -> AsyncIterator[bytes]:
    yield b"firmware image bytes" * 50


async def _provisioning(db: Database, ca: CertificateAuthority) -> list[str]:
    """Returns the secrets these actions handled."""
    async with db.connect() as conn:
        default = await reg.get_template(conn, "DefaultProvisioningTemplate")
    assert default is not None
    await admin.create_template(db, "T1", admin.TemplateSpec(body=default.body))
    hook = f"https://hook.example/provision?token={HOOK_SECRET}"
    await admin.update_template(db, "T1", admin.TemplateSpec(body=None, hook_url=hook))
    claim, issued = await admin.create_claim(db, ca, ["T1"])
    await admin.revoke_claim(db, claim.id)
    with pytest.raises(admin.AdminConflict):
        await admin.revoke_claim(db, claim.id)  # recorded as failed
    for name in ("dev-1", "dev-2"):
        cert = await admin.register_device_certificate(db, name, ca.issue(name, KeyType.EC_P256))
    await admin.set_certificate_status(db, cert.id, "INACTIVE")
    await admin.delete_thing(db, "dev-1")
    assert issued.private_key_pem is not None
    return [issued.private_key_pem.splitlines()[1]]


async def _accounts(db: Database) -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "topic/a/*"}]}
    await accounts.put_policy(db, "p1", document)
    await accounts.create_mqtt_user(db, "bob", PASSWORD, policy_name="p1")
    await accounts.set_mqtt_user_password(db, "bob", PASSWORD2)
    await accounts.delete_mqtt_user(db, "bob")


async def _keys(db: Database) -> list[str]:
    keys = KeyService(db)
    key, secret = await keys.create("Org A", "external", rate_per_minute=60)
    new_key, new_secret = await keys.rotate(key.id)
    await keys.revoke(new_key.id, "a note")
    with acting_as(Actor("config")):
        await keys.import_env([ENV_SECRET], "external")
        await keys.import_env([], "external")  # revokes it
    return [secret, new_secret]


async def _schedules(db: Database) -> None:
    service = ScheduleService(ScheduleStore(db), ManualClock(1_800_000_000), schemes_allowed)
    body = {
        "activity_id": "act-1",
        "participant_id": "p-1",
        "destinations": [f"apns:{DEVICE_TOKEN}"],
        "title": TITLE,
        "message": MESSAGE,
        "timezone": "Europe/London",
        "start": "2027-03-01T09:00:00",
        "repeat": "daily",
        "times": ["09:00"],
    }
    owner = Owner("key_owner1")
    view = await service.create(owner, body)
    await service.pause(owner, view["id"])
    await service.resume(owner, view["id"])
    await service.delete(None, view["id"])  # the administrator


async def _jobs(db: Database, root: Path) -> None:
    clock = JobsClock()
    catalog = FirmwareCatalog(db, LocalObjectStore(root / "files"), clock, 10_000_000)
    groups = ThingGroups(db, clock)
    deployments = DeploymentService(db, clock)
    firmware = await catalog.upload(_image(), version="1.0.0", name="pump")
    await groups.create("ward-a")
    await groups.add("ward-a", ["dev-2"])
    await groups.remove("ward-a", ["dev-2"])
    await groups.delete("ward-a")
    job = await deployments.create(DeploymentSpec(firmware_id=firmware.id, things=["dev-2"]))
    await deployments.cancel(job.job_id, force=True)
    await catalog.delete(firmware.id)


async def _tokens(db: Database) -> list[str]:
    issued = await tokens.create_token(db, project="default", scope="fhir:read", name="reader")
    await tokens.revoke_token(db, issued.record.id)
    return [issued.token]


async def test_every_admin_action_is_recorded_without_secrets(
    db: Database, ca: CertificateAuthority, tmp_path: Path
) -> None:
    with acting_as(Actor("cli:tester")):
        secrets = await _provisioning(db, ca)
        await _accounts(db)
        secrets += await _keys(db)
        await _schedules(db)
        await _jobs(db, tmp_path)
        secrets += await _tokens(db)
    rows = (await read_page(db, limit=1000)).entries
    entries: list[dict[str, Any]] = [entry_json(r) for r in rows]
    assert {e["action"] for e in entries} == EXPECTED

    def one(action: str, **where: Any) -> dict[str, Any]:
        found = [
            e for e in entries if e["action"] == action and all(e[k] == v for k, v in where.items())
        ]
        assert len(found) == 1, (action, where, found)
        return found[0]

    claim = one("claim.create")
    assert claim["target"].startswith("claim-") and claim["actor"] == "cli:tester"
    assert one("claim.revoke", outcome="failed")["details"]["error"] == "AdminConflict"
    assert one("claim.revoke", outcome="ok")["target"] == claim["target"]
    assert one("template.update")["details"]["fields"] == ["pre_provisioning_hook_url"]
    assert one("thing.delete")["target"] == "dev-1"
    assert one("certificate.update_status")["details"]["status"] == "INACTIVE"
    assert one("mqtt_user.create")["details"] == {"policy": "p1"}
    assert one("policy.put")["target"] == "p1"
    created = [e for e in entries if e["action"] == "apikey.create"]
    assert {e["actor"] for e in created} == {"cli:tester", "config"}
    revoked = [e for e in entries if e["action"] == "apikey.revoke"]
    assert {e["actor"] for e in revoked} == {"cli:tester", "config"}
    assert one("apikey.rotate")["details"]["new_key"].startswith("key_")
    for action in ("schedule.create", "schedule.pause", "schedule.resume"):
        assert one(action)["actor"] == "api-key:key_owner1"
    assert one("schedule.delete")["actor"] == "cli:tester"
    assert one("schedule.create")["target"].startswith("sch_")
    assert one("group.add_things")["details"]["things"] == ["dev-2"]
    assert one("deployment.cancel")["details"]["force"] is True
    assert one("firmware.upload")["target"].startswith("fw-")
    assert one("token.create")["target"] == one("token.revoke")["target"]
    # No secret anywhere: keys, passwords, private keys, tokens, message contents.
    dumped = json.dumps(entries)
    planted = [PASSWORD, PASSWORD2, HOOK_SECRET, TITLE, MESSAGE, DEVICE_TOKEN, ENV_SECRET]
    for secret in [*planted, *secrets]:
        assert secret not in dumped, secret
