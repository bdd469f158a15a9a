"""The fleet-provisioning admin routes (``/v1/claims``, ``/v1/templates``, ``/v1/things``,
``/v1/certificates``) against one real ``lantern serve``, with httpx; a claim created over HTTP
provisions a real device (paho-mqtt, ``lantern.device``) that ``PUT /v1/certificates`` locks out.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lantern.api.admin_auth import AUTH_HINT
from lantern.runtime.datadir import DataDir
from lantern.store import Database
from lantern.store import registry as reg
from support.mqtt_server import Client, reason_value
from support.process import LanternProcess
from support.provisioning_env import Claim, provision_device

DEFAULT = "DefaultProvisioningTemplate"
NOT_AUTHORIZED = 0x87
ADMINISTRATIVE_ACTION = 0x98
BODY = {
    "Parameters": {"Serial": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Serial"}}}
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    """One ``lantern serve`` for this module (its own data directory)."""
    proc = LanternProcess(tmp_path_factory.mktemp("admin-http") / "data")
    with proc:
        yield proc


@pytest.fixture(scope="module")
def api(server: LanternProcess) -> Iterator[httpx.Client]:
    token = DataDir(server.data_dir).admin_token()
    with httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    ) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_claim(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v1/claims", json={"templates": [DEFAULT], **fields})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def claim_files(created: dict[str, Any], directory: Path) -> Claim:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, ca = directory / "claim.pem", directory / "claim.key", directory / "ca.pem"
    cert.write_text(created["certificatePem"])
    key.write_text(created["privateKey"])
    ca.write_text(created["caPem"])
    return Claim(cert, key, ca)


def error_of(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"errorCode", "errorMessage"}
    return str(body["errorMessage"])


# -- auth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/claims", None),
        ("POST", "/v1/claims", {"templates": [DEFAULT]}),
        ("POST", "/v1/claims/claim-x/revoke", None),
        ("GET", "/v1/templates", None),
        ("POST", "/v1/templates", {"templateName": "Nope", "templateBody": BODY}),
        ("PATCH", f"/v1/templates/{DEFAULT}", {"enabled": False}),
        ("GET", "/v1/things", None),
        ("DELETE", "/v1/things/x", None),
        ("GET", "/v1/certificates", None),
        ("PUT", "/v1/certificates/0123456789abcdef", {"status": "REVOKED"}),
    ],
)
def test_every_route_needs_the_admin_token(
    server: LanternProcess, api: httpx.Client, method: str, path: str, body: object
) -> None:
    before = api.get("/v1/claims").json()
    for headers in (
        {},
        {"Authorization": "Bearer lat_wrong"},
        {"Authorization": f"Basic {api.headers['authorization'].split()[1]}"},
    ):
        resp = httpx.request(method, server.http_url + path, json=body, headers=headers)
        assert resp.status_code == 401, resp.text
        assert resp.json() == {"errorCode": "Unauthorized", "errorMessage": AUTH_HINT}
    assert api.get("/v1/claims").json() == before
    assert api.get(f"/v1/templates/{DEFAULT}").json()["enabled"] is True


# -- claims -------------------------------------------------------------------------------------
def test_claim_create_list_revoke(api: httpx.Client) -> None:
    created = new_claim(api, description="line 3", deviceLimit=5)
    assert set(created) == {
        "claimId",
        "certificateId",
        "certificatePem",
        "privateKey",
        "caPem",
        "templates",
    }
    assert created["templates"] == [DEFAULT]
    cert = x509.load_pem_x509_certificate(created["certificatePem"].encode())
    key = serialization.load_pem_private_key(created["privateKey"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # ec-p256 by default
    assert cert.public_key() == key.public_key()
    ca = x509.load_pem_x509_certificate(created["caPem"].encode())
    assert cert.issuer == ca.subject
    listed = {c["claimId"]: c for c in api.get("/v1/claims").json()["claims"]}
    claim = listed[created["claimId"]]
    assert claim == {
        "claimId": created["claimId"],
        "certificateId": created["certificateId"],
        "templates": [DEFAULT],
        "deviceLimit": 5,
        "devices": 0,
        "description": "line 3",
        "createdAt": claim["createdAt"],
        "revokedAt": None,
    }
    assert isinstance(claim["createdAt"], int)

    revoked = api.post(f"/v1/claims/{created['claimId']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert isinstance(revoked.json()["revokedAt"], int)
    assert {k: v for k, v in revoked.json().items() if k != "revokedAt"} == {
        k: v for k, v in claim.items() if k != "revokedAt"
    }
    cert_shown = api.get(f"/v1/certificates/{created['certificateId']}").json()
    assert cert_shown["status"] == "REVOKED" and cert_shown["kind"] == "claim"
    again = api.post(f"/v1/claims/{created['claimId']}/revoke")
    assert "already revoked" in error_of(again, 409)
    assert "does not exist" in error_of(api.post("/v1/claims/claim-nope/revoke"), 404)


def test_claim_with_rsa_key(api: httpx.Client) -> None:
    created = new_claim(api, keyType="rsa-2048")
    key = serialization.load_pem_private_key(created["privateKey"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "templates"),
        ({"templates": []}, "templates"),
        ({"templates": DEFAULT}, "templates"),
        ({"templates": [1]}, "templates.0"),
        ({"templates": [DEFAULT], "description": 5}, "description"),
        ({"templates": [DEFAULT], "deviceLimit": 0}, "deviceLimit"),
        ({"templates": [DEFAULT], "deviceLimit": "5"}, "deviceLimit"),
        ({"templates": [DEFAULT], "deviceLimit": 1.5}, "deviceLimit"),
        ({"templates": [DEFAULT], "keyType": "ed25519"}, "keyType"),
        ({"templates": [DEFAULT], "owner": "me"}, "owner"),
        ([DEFAULT], "body"),
    ],
)
def test_claim_bad_bodies_name_the_field(api: httpx.Client, body: object, field: str) -> None:
    before = api.get("/v1/claims").json()
    message = error_of(api.post("/v1/claims", json=body), 400)
    assert message.startswith(f"{field}: "), message
    assert api.get("/v1/claims").json() == before


def test_claim_invalid_json_and_unknown_template(api: httpx.Client) -> None:
    resp = api.post(
        "/v1/claims", content=b'{"templates": [', headers={"Content-Type": "application/json"}
    )
    assert error_of(resp, 400).startswith("body: ")
    resp = api.post("/v1/claims", json={"templates": [DEFAULT, "Missing"]})
    assert "template Missing does not exist" in error_of(resp, 404)


# -- templates ----------------------------------------------------------------------------------
def test_templates_create_show_update(api: httpx.Client) -> None:
    name = unique("Sensors")
    created = api.post(
        "/v1/templates",
        json={"templateName": name, "templateBody": json.dumps(BODY), "description": "sensors"},
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "templateName": name,
        "description": "sensors",
        "enabled": True,
        "templateBody": BODY,
        "preProvisioningHookUrl": None,
        "version": 1,
    }
    assert api.get(f"/v1/templates/{name}").json() == created.json()
    names = [t["templateName"] for t in api.get("/v1/templates").json()["templates"]]
    assert DEFAULT in names and name in names
    exists = api.post("/v1/templates", json={"templateName": name, "templateBody": BODY})
    assert "already exists" in error_of(exists, 409)

    hooked = api.patch(
        f"/v1/templates/{name}",
        json={"enabled": False, "preProvisioningHookUrl": "https://hooks.example.org/p"},
    )
    assert hooked.status_code == 200, hooked.text
    assert hooked.json()["enabled"] is False and hooked.json()["version"] == 2
    assert hooked.json()["preProvisioningHookUrl"] == "https://hooks.example.org/p"
    assert hooked.json()["templateBody"] == BODY and hooked.json()["description"] == "sensors"
    new_body = {**BODY, "DeviceConfiguration": {"Fw": "2"}}
    patched = api.patch(
        f"/v1/templates/{name}", json={"templateBody": new_body, "description": "v3"}
    )
    assert patched.json()["templateBody"] == new_body and patched.json()["description"] == "v3"
    assert patched.json()["preProvisioningHookUrl"] == "https://hooks.example.org/p"
    cleared = api.patch(f"/v1/templates/{name}", json={"preProvisioningHookUrl": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["preProvisioningHookUrl"] is None and cleared.json()["version"] == 4

    # Failed updates change nothing.
    for body, field in [
        ({"preProvisioningHookUrl": "ftp://x"}, "preProvisioningHookUrl"),
        ({"enabled": "yes"}, "enabled"),
        ({"description": 3}, "description"),
        ({"templateBody": "{not json"}, "templateBody"),
        ({"templateName": "Other"}, "templateName"),
        ({}, "body"),
    ]:
        assert field in error_of(api.patch(f"/v1/templates/{name}", json=body), 400)
    bad = api.patch(
        f"/v1/templates/{name}", json={"templateBody": {"Resources": {"x": {"Type": "S3"}}}}
    )
    assert "Type must be one of" in error_of(bad, 400)
    assert api.get(f"/v1/templates/{name}").json() == cleared.json()

    assert "does not exist" in error_of(
        api.patch("/v1/templates/Nope", json={"enabled": True}), 404
    )
    assert "does not exist" in error_of(api.get("/v1/templates/Nope"), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"templateBody": BODY}, "templateName"),
        ({"templateName": 5, "templateBody": BODY}, "templateName"),
        ({"templateName": "T"}, "templateBody"),
        ({"templateName": "T", "templateBody": None}, "templateBody"),
        ({"templateName": "T", "templateBody": "{"}, "templateBody"),
        ({"templateName": "T", "templateBody": [1]}, "template body must be a JSON object"),
        ({"templateName": "T", "templateBody": {"Nope": {}}}, "unknown sections: Nope"),
        ({"templateName": "bad name!", "templateBody": BODY}, "template name 'bad name!'"),
        (
            {"templateName": "T", "templateBody": BODY, "preProvisioningHookUrl": "file:///x"},
            "preProvisioningHookUrl",
        ),
        ({"templateName": "T", "templateBody": BODY, "enabled": "no"}, "enabled"),
        ({"templateName": "T", "templateBody": BODY, "owner": "me"}, "owner"),
        (["T"], "body"),
    ],
)
def test_template_bad_bodies_name_the_field(api: httpx.Client, body: object, field: str) -> None:
    message = error_of(api.post("/v1/templates", json=body), 400)
    assert field in message, message
    assert api.get("/v1/templates/T").status_code == 404


def test_template_invalid_json(api: httpx.Client) -> None:
    for route, send in (("/v1/templates", api.post), (f"/v1/templates/{DEFAULT}", api.patch)):
        resp = send(route, content=b"{", headers={"Content-Type": "application/json"})
        assert error_of(resp, 400).startswith("body: invalid JSON")


# -- a claim made over HTTP, end to end -----------------------------------------------------------
def test_http_claim_provisions_a_device_that_put_inactive_locks_out(
    server: LanternProcess, api: httpx.Client, tmp_path: Path
) -> None:
    created = new_claim(api, description="factory line 1")
    claim = claim_files(created, tmp_path / "claim")
    result, files = provision_device(server, claim, tmp_path / "device", "e2e1")
    thing = result.thing_name
    assert thing.startswith("e2e1-")
    dev = Client(server.mqtt_port, files, thing, 5)
    dev.connect()

    listed = {c["claimId"]: c for c in api.get("/v1/claims").json()["claims"]}
    assert listed[created["claimId"]]["devices"] == 1
    things = {t["thingName"]: t for t in api.get("/v1/things").json()["things"]}
    assert things[thing] == {
        "thingName": thing,
        "serialNumber": "e2e1",
        "manufacturer": "acme",
        "model": "m",
        "deviceName": "n",
        "templateName": DEFAULT,
        "attributes": things[thing]["attributes"],
        "createdAt": things[thing]["createdAt"],
    }
    shown = api.get(f"/v1/things/{thing}").json()
    assert shown["certificates"] == [{"certificateId": result.certificate_id, "status": "ACTIVE"}]
    by_thing = api.get("/v1/certificates", params={"thing": thing}).json()["certificates"]
    assert [c["certificateId"] for c in by_thing] == [result.certificate_id]
    cert = api.get(f"/v1/certificates/{result.certificate_id[:16]}").json()
    assert cert["certificateId"] == result.certificate_id
    assert cert["certificatePem"].strip() == result.certificate_pem.strip()
    assert cert["kind"] == "device" and cert["thingName"] == thing
    assert isinstance(cert["policyNames"], list)
    active = api.get("/v1/certificates", params={"status": "ACTIVE"}).json()["certificates"]
    assert result.certificate_id in {c["certificateId"] for c in active}
    assert {c["status"] for c in active} == {"ACTIVE"}

    # Deactivate over HTTP: the live connection is closed and the device cannot come back.
    resp = api.put(f"/v1/certificates/{result.certificate_id}", json={"status": "INACTIVE"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "INACTIVE"
    assert resp.json()["certificatePem"] == cert["certificatePem"]
    assert reason_value(dev.disconnects.get(timeout=5)) == ADMINISTRATIVE_ACTION
    dev.paho.loop_stop()
    again = Client(server.mqtt_port, files, thing, 5)
    assert reason_value(again.connect(expect_ok=False)[0]) == NOT_AUTHORIZED
    again.paho.loop_stop()
    inactive = api.put(f"/v1/certificates/{result.certificate_id}", json={"status": "INACTIVE"})
    assert "already INACTIVE" in error_of(inactive, 409)

    # Reactivated it connects again; revoked it is final.
    resp = api.put(f"/v1/certificates/{result.certificate_id[:12]}", json={"status": "ACTIVE"})
    assert resp.status_code == 200 and resp.json()["status"] == "ACTIVE"
    back = Client(server.mqtt_port, files, thing, 5)
    back.connect()
    back.stop()
    revoked = api.put(f"/v1/certificates/{result.certificate_id}", json={"status": "REVOKED"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "REVOKED"
    final = api.put(f"/v1/certificates/{result.certificate_id}", json={"status": "ACTIVE"})
    assert "cannot become ACTIVE" in error_of(final, 409)


def test_delete_thing_deactivates_its_certificate(
    server: LanternProcess, api: httpx.Client, tmp_path: Path
) -> None:
    claim = claim_files(new_claim(api), tmp_path / "claim")
    result, files = provision_device(server, claim, tmp_path / "device", "del1")
    dev = Client(server.mqtt_port, files, result.thing_name, 5)
    dev.connect()
    resp = api.delete(f"/v1/things/{result.thing_name}")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deactivatedCertificates": [result.certificate_id]}
    assert reason_value(dev.disconnects.get(timeout=5)) == ADMINISTRATIVE_ACTION
    dev.paho.loop_stop()
    cert = api.get(f"/v1/certificates/{result.certificate_id}").json()
    assert cert["status"] == "INACTIVE"
    assert "does not exist" in error_of(api.get(f"/v1/things/{result.thing_name}"), 404)
    assert "does not exist" in error_of(api.delete(f"/v1/things/{result.thing_name}"), 404)
    names = {t["thingName"] for t in api.get("/v1/things").json()["things"]}
    assert result.thing_name not in names
    # Detached from its thing, the certificate cannot be made ACTIVE again.
    back = api.put(f"/v1/certificates/{result.certificate_id}", json={"status": "ACTIVE"})
    assert "attached to a thing" in error_of(back, 409)


# -- certificates: lookups and bad input --------------------------------------------------------
async def _insert_certificates(db_file: Path, ids: list[str]) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with db.transaction() as conn:
            for cid in ids:
                await reg.insert_certificate(
                    conn,
                    reg.CertificateRecord(
                        cid, "not a pem", "device", "INACTIVE", "default", None, 1.0, 1.0
                    ),
                )
    finally:
        await db.close()


def test_certificate_lookup_errors(server: LanternProcess, api: httpx.Client) -> None:
    prefix = uuid.uuid4().hex[:10]
    ids = [prefix + c * 54 for c in "01"]
    asyncio.run(_insert_certificates(server.data_dir / "lantern.db", ids))
    assert api.get(f"/v1/certificates/{ids[0]}").json()["certificateId"] == ids[0]
    assert "matches 2 certificates" in error_of(api.get(f"/v1/certificates/{prefix}"), 400)
    assert "first 8 characters" in error_of(api.get("/v1/certificates/abc"), 400)
    assert "no certificate" in error_of(api.get("/v1/certificates/00000000ffffffff"), 404)
    put = api.put("/v1/certificates/00000000ffffffff", json={"status": "REVOKED"})
    assert "no certificate" in error_of(put, 404)
    ambiguous = api.put(f"/v1/certificates/{prefix}", json={"status": "REVOKED"})
    assert "give more digits" in error_of(ambiguous, 400)
    status = error_of(api.get("/v1/certificates", params={"status": "DELETED"}), 400)
    assert status.startswith("status: ") and "PENDING_ACTIVATION" in status
    inactive = api.get("/v1/certificates", params={"status": "INACTIVE"}).json()["certificates"]
    assert set(ids) <= {c["certificateId"] for c in inactive}


@pytest.mark.parametrize(
    "body",
    [{}, {"status": "DELETED"}, {"status": "PENDING_ACTIVATION"}, {"status": 1}, ["ACTIVE"]],
)
def test_certificate_put_bad_bodies(api: httpx.Client, body: object) -> None:
    message = error_of(api.put("/v1/certificates/00000000ffffffff", json=body), 400)
    assert message.startswith(("status: ", "body: ")), message
    resp = api.put(
        "/v1/certificates/00000000ffffffff",
        content=b"status=ACTIVE",
        headers={"Content-Type": "application/json"},
    )
    assert error_of(resp, 400).startswith("body: ")


# -- the claim's private key is only in the response ----------------------------------------------
def test_claim_private_key_is_not_stored_or_logged(
    server: LanternProcess, api: httpx.Client
) -> None:
    for key_type in ("ec-p256", "rsa-2048"):
        resp = api.post("/v1/claims", json={"templates": [DEFAULT], "keyType": key_type})
        assert resp.status_code == 201, resp.text
        assert resp.headers["cache-control"] == "no-store"
        lines = resp.json()["privateKey"].strip().splitlines()
        assert lines[0].startswith("-----BEGIN") and lines[-1].startswith("-----END")
        b64 = "".join(lines[1:-1])
        needles = [b64.encode(), lines[1].encode()]  # the whole body, and its first line
        files = [p for p in server.data_dir.rglob("*") if p.is_file()]
        assert any(p.name.startswith("lantern.db") for p in files)
        for path in files:
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, path
        output = server.current_output()
        assert lines[1] not in output and "PRIVATE KEY" not in output
