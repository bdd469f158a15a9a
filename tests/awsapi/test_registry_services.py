"""The registry and policy actions the AWS API adds, on both databases: nothing half-done on a
refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from lantern.gateway import policy_admin
from lantern.gateway.accounts import AccountError
from lantern.pki import CertificateAuthority
from lantern.provisioning import admin, registry
from lantern.provisioning.queries import RegistryQueries
from lantern.store import Database

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
}
TEMPLATE = {
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "x"}},
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                "Status": "Active",
            },
        },
    }
}


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    authority, _ = CertificateAuthority.load_or_create(tmp_path / "ca", ["localhost"])
    return authority


async def test_things_certificates_and_policies(db: Database, ca: CertificateAuthority) -> None:
    queries = RegistryQueries(db)
    await registry.create_thing(db, "t1", {"a": "1", "b": "2"})
    with pytest.raises(admin.AdminConflict):
        await registry.create_thing(db, "t1", {})
    with pytest.raises(admin.AdminError):
        await registry.create_thing(db, "t2", {"a": 1})
    assert await queries.thing("t2") is None
    updated = await registry.update_thing(db, "t1", {"a": "", "c": "3"}, merge=True)
    assert updated.attributes == {"b": "2", "c": "3"}
    replaced = await registry.update_thing(db, "t1", {"z": "9"}, merge=False, expected_version=2)
    assert replaced.attributes == {"z": "9"} and replaced.version == 3
    with pytest.raises(registry.ThingVersionConflict):
        await registry.update_thing(db, "t1", {}, merge=False, expected_version=2)
    assert (await queries.thing("t1")).thing.version == 3  # type: ignore[union-attr]

    cert, issued = await registry.create_certificate(db, ca, active=True)
    assert issued.private_key_pem and cert.status == "ACTIVE" and cert.thing_name is None
    await registry.attach_certificate(db, "t1", cert.id)
    await registry.attach_certificate(db, "t1", cert.id)  # again: nothing changes
    await registry.create_thing(db, "t3", {})
    with pytest.raises(admin.AdminConflict):
        await registry.attach_certificate(db, "t3", cert.id)
    with pytest.raises(registry.CertificateInUse):
        await registry.delete_certificate(db, cert.id)  # ACTIVE

    await policy_admin.create_policy(db, "p1", POLICY)
    with pytest.raises(policy_admin.PolicyConflict):
        await policy_admin.create_policy(db, "p1", POLICY)
    with pytest.raises(AccountError):
        await policy_admin.create_policy(db, "p2", {"Statement": "nope"})
    await policy_admin.attach_policy(db, "p1", cert.id)
    assert await policy_admin.attached_policies(db, cert.id) == ["p1"]
    with pytest.raises(policy_admin.PolicyConflict):
        await policy_admin.delete_policy(db, "p1")

    await admin.set_certificate_status(db, cert.id, "INACTIVE")
    with pytest.raises(registry.CertificateInUse, match="attached to thing"):
        await registry.delete_certificate(db, cert.id)
    await registry.detach_certificate(db, "t1", cert.id)
    with pytest.raises(registry.CertificateInUse, match="policies"):
        await registry.delete_certificate(db, cert.id)
    await policy_admin.detach_policy(db, "p1", cert.id)
    await registry.delete_certificate(db, cert.id)
    assert await queries.certificates(thing="t1") == []
    await policy_admin.delete_policy(db, "p1")
    with pytest.raises(policy_admin.PolicyNotFound):
        await policy_admin.delete_policy(db, "p1")


async def test_a_template_a_claim_uses_is_not_deleted(
    db: Database, ca: CertificateAuthority
) -> None:
    await admin.create_template(db, "T1", admin.TemplateSpec(body=TEMPLATE))
    claim, _ = await admin.create_claim(db, ca, ["T1"])
    with pytest.raises(registry.TemplateInUse):
        await registry.delete_template(db, "T1")
    await admin.revoke_claim(db, claim.id)
    await registry.delete_template(db, "T1")
    assert await RegistryQueries(db).template("T1") is None
    with pytest.raises(admin.AdminNotFound):
        await registry.delete_template(db, "T1")
