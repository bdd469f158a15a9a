"""Deeply nested JSON (and CBOR) against a real ``lantern serve``: every HTTP route that takes a
JSON body and every ``$aws/...`` topic that takes a JSON/CBOR payload answers its normal 400 /
``rejected`` reply naming the problem, and the server keeps serving (no RecursionError, no 500).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import httpx
import pytest

from support.mqtt_server import Client, ClientFiles
from support.process import LanternProcess
from support.provisioning_env import Claim, lantern_cli, provision_device

API_KEY = "nested-json-test-key-0123456789"
DEEP_64K = b"[" * 32768 + b"]" * 32768  # 64 KiB, 32768 levels
DEEP_4K = b"[" * 2000 + b"]" * 2000  # fits every MQTT topic's size limit (file links: 4096)
DEEP_CBOR = b"\x81" * 4000 + b"\x00"  # 4000 nested one-element arrays
MESSAGE = "nested deeper than 64 levels"
TEMPLATE = "DefaultProvisioningTemplate"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    env = {"API_KEYS": API_KEY, "API_KEYS_SCOPE": "internal"}
    with LanternProcess(tmp_path_factory.mktemp("nested") / "data", env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def claim(server: LanternProcess, tmp_path_factory: pytest.TempPathFactory) -> Claim:
    out = tmp_path_factory.mktemp("claim")
    done = lantern_cli(server, "claims", "create", "--template", TEMPLATE, "--out", str(out))
    assert done.returncode == 0, done.stderr
    cert = next(out.glob("claim-*.pem"))
    return Claim(cert, cert.with_suffix(".key"), out / "ca.pem")


def admin_headers(server: LanternProcess) -> dict[str, str]:
    token = (server.data_dir / "admin-token").read_text().strip()
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


KEY = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
JSON_ONLY = {"Content-Type": "application/json"}
PUSH_ERROR = {"error": f"the request body is JSON {MESSAGE}", "code": "invalid_json"}
SCHEDULE_ERROR = {"error": f"body: is JSON {MESSAGE}", "code": "invalid_json"}
ADMIN_ERROR = {"errorCode": "InvalidRequest", "errorMessage": f"body: JSON {MESSAGE}"}

# (method, path, headers: "key" | "none" | "admin", body, expected JSON answer)
ROUTES: list[tuple[str, str, str, bytes, dict[str, Any]]] = [
    ("POST", "/push", "key", DEEP_64K, {**PUSH_ERROR, "field": "body"}),
    ("POST", "/push", "none", DEEP_64K, {**PUSH_ERROR, "field": "body"}),
    ("POST", "/schedules", "key", DEEP_64K, {**SCHEDULE_ERROR, "field": "body"}),
    # No Bearer header: the legacy JSON api_key is looked for in the body, before any key check.
    ("POST", "/schedules", "none", DEEP_64K, {**PUSH_ERROR, "field": "body"}),
    ("GET", "/schedules", "none", DEEP_64K, {**PUSH_ERROR, "field": "body"}),
    ("PATCH", "/schedules/sch_unknown", "key", DEEP_64K, {**SCHEDULE_ERROR, "field": "body"}),
    ("POST", "/v1/claims", "admin", DEEP_64K, ADMIN_ERROR),
    ("POST", "/v1/templates", "admin", DEEP_64K, ADMIN_ERROR),
    (
        "POST",
        "/v1/templates",
        "admin",
        json.dumps({"templateName": "t1", "templateBody": DEEP_4K.decode()}).encode(),
        {"errorCode": "InvalidRequest", "errorMessage": f"body: templateBody: JSON {MESSAGE}"},
    ),
    ("PATCH", f"/v1/templates/{TEMPLATE}", "admin", DEEP_64K, ADMIN_ERROR),
    ("PUT", "/v1/certificates/abc", "admin", DEEP_64K, ADMIN_ERROR),
    ("POST", "/v1/deployments", "admin", DEEP_64K, ADMIN_ERROR),
    ("POST", "/v1/deployments/d-1/cancel", "admin", DEEP_64K, ADMIN_ERROR),
]


@pytest.mark.parametrize(
    ("method", "path", "auth", "body", "expected"),
    ROUTES,
    ids=[f"{m} {p} ({a}{', string' if b[:1] == b'{' else ''})" for m, p, a, b, _ in ROUTES],
)
def test_http_route_answers_400_to_deep_json(
    server: LanternProcess,
    method: str,
    path: str,
    auth: str,
    body: bytes,
    expected: dict[str, Any],
) -> None:
    headers = {"key": KEY, "none": JSON_ONLY, "admin": admin_headers(server)}[auth]
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        response = http.request(method, path, content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json() == expected
        assert http.get("/healthz").status_code == 200


def rejected(client: Client, topic: str, *, cbor: bool = False) -> dict[str, Any]:
    """The reply to ``topic``: must come on ``topic/rejected``."""
    while True:
        message = client.expect(timeout=10)
        if message.topic.startswith(topic):
            break
    assert message.topic == f"{topic}/rejected", message
    body = cbor2.loads(message.payload) if cbor else json.loads(message.payload)
    assert isinstance(body, dict)
    return body


IDENTITY_TOPICS = [
    "$aws/certificates/create/json",
    "$aws/certificates/create/cbor",
    "$aws/certificates/create-from-csr/json",
    "$aws/certificates/create-from-csr/cbor",
    f"$aws/provisioning-templates/{TEMPLATE}/provision/json",
    f"$aws/provisioning-templates/{TEMPLATE}/provision/cbor",
]


def test_identity_api_rejects_deep_json_and_cbor(server: LanternProcess, claim: Claim) -> None:
    client = Client(server.mqtt_port, ClientFiles(claim.cert, claim.key, claim.ca), "claimer")
    client.connect()
    try:
        for topic in IDENTITY_TOPICS:
            client.subscribe(f"{topic}/+", qos=1)
        for topic in IDENTITY_TOPICS:
            cbor = topic.endswith("cbor")
            client.publish(topic, DEEP_CBOR if cbor else DEEP_4K, qos=1)
            body = rejected(client, topic, cbor=cbor)
            what = "CBOR" if cbor else "JSON"
            assert body == {
                "statusCode": 400,
                "errorCode": "InvalidPayload",
                "errorMessage": f"request payload is {what} {MESSAGE}",
            }
        # Still serving: a real CreateKeysAndCertificate succeeds on the same connection.
        client.publish("$aws/certificates/create/json", b"{}", qos=1)
        reply = client.expect(timeout=10)
        assert reply.topic == "$aws/certificates/create/json/accepted", reply
    finally:
        client.stop()


def test_device_topics_reject_deep_json(
    server: LanternProcess, claim: Claim, tmp_path: Path
) -> None:
    result, files = provision_device(server, claim, tmp_path, serial=uuid.uuid4().hex[:8])
    thing = result.thing_name
    client = Client(server.mqtt_port, files, thing)
    client.connect()
    try:
        client.subscribe(f"{thing}/#", qos=1)
        client.subscribe(f"$aws/things/{thing}/jobs/#", qos=1)
        cases = [
            ("$aws/rules/FHIRIngest", f"{thing}/FHIRIngest"),
            ("$aws/rules/CreateFileUploadLink", f"{thing}/CreateFileUploadLink"),
            (f"$aws/things/{thing}/jobs/get", None),
            (f"$aws/things/{thing}/jobs/start-next", None),
            (f"$aws/things/{thing}/jobs/job-1/get", None),
            (f"$aws/things/{thing}/jobs/job-1/update", None),
        ]
        code = "InvalidJson"
        for topic, reply_base in cases:
            client.publish(topic, DEEP_4K, qos=1)
            body = rejected(client, reply_base or topic)
            if reply_base is None:  # AWS Jobs' ErrorResponse
                assert body["code"] == code and body["message"] == f"the payload is JSON {MESSAGE}"
            else:
                assert body["errorCode"] == code, body
                assert body["errorMessage"] == f"payload is JSON {MESSAGE}", body
        # Still serving: a valid observation is accepted.
        observation = {
            "value": 98,
            "unit": "%",
            "coding": [{"code": "c", "system": "http://example.org/codes"}],
        }
        client.publish("$aws/rules/FHIRIngest", json.dumps(observation).encode(), qos=1)
        message = client.expect(timeout=10)
        assert message.topic == f"{thing}/FHIRIngest/accepted", message
    finally:
        client.stop()


def test_legacy_api_key_lookup_reads_a_bounded_body(server: LanternProcess) -> None:
    """Without a Bearer header the key may be in the JSON body, which is read before the caller
    is known: never more than 64 KiB of it."""
    big = json.dumps({"api_key": API_KEY, "pad": "x" * 1_000_000}).encode()
    small = json.dumps({"api_key": API_KEY}).encode()
    with httpx.Client(base_url=server.http_url, timeout=10, headers=JSON_ONLY) as http:
        refused = http.request("GET", "/schedules", content=big)
        assert refused.status_code == 413, refused.text
        assert refused.json()["code"] == "payload_too_large"
        assert http.request("GET", "/schedules", content=small).status_code == 200
