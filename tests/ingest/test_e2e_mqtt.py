"""Device data end to end: a real ``lantern serve``, devices provisioned over MQTT with a claim
made by ``lantern claims create``, then paho-mqtt (MQTT 5 and 3.1.1), the AWS IoT Device SDK v2
MQTT 5 client and the ``lantern device`` commands record observations and upload files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from awscrt import mqtt5
from awsiot import mqtt5_client_builder
from fhir.resources.R4B.observation import Observation
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError

from support.process import LanternProcess
from support.provisioning_env import Claim

from .mqtt_kit import (
    WAIT,
    Device,
    DeviceConnection,
    count_for_thing,
    create_claim,
    new_device,
    observation,
    observations_refused,
    postgres_database,
    stored_db,
    stored_patient_ids,
)

INGEST = "$aws/rules/FHIRIngest"
LINK = "$aws/rules/CreateFileUploadLink"
PAYLOAD_FORMAT_INVALID = 0x99
UNSPECIFIED_ERROR = 0x80


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LanternProcess]:
    """``lantern serve`` on its SQLite file, and once more on a fresh PostgreSQL database."""
    data_dir = tmp_path_factory.mktemp("lantern") / "data"
    if request.param == "sqlite":
        with LanternProcess(data_dir) as proc:
            yield proc
        return
    with (
        postgres_database() as url,
        LanternProcess(data_dir, {"LANTERN_DATABASE_URL": url}) as proc,
    ):
        yield proc


@pytest.fixture(scope="module")
def claim(server: LanternProcess, tmp_path_factory: pytest.TempPathFactory) -> Claim:
    return create_claim(server, tmp_path_factory.mktemp("claim"))


@pytest.fixture
def device(server: LanternProcess, claim: Claim, tmp_path: Path) -> Device:
    return new_device(server, claim, tmp_path / "certs", serial=uuid.uuid4().hex[:8])


def admin(server: LanternProcess) -> dict[str, str]:
    token = (server.data_dir / "admin-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def fhir_get(server: LanternProcess, path: str) -> dict[str, Any]:
    r = httpx.get(f"{server.http_url}/fhir/{path}", headers=admin(server), timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize("version", [5, 4], ids=["mqtt5", "mqtt311"])
def test_paho_observations_are_committed_before_their_puback(
    server: LanternProcess, device: Device, version: int
) -> None:
    db = stored_db(server)
    stored_at_puback: dict[int, set[str]] = {}

    def on_puback(mid: int, reason: int) -> None:
        # Runs the moment the PUBACK arrives (in paho's thread, under paho's lock: take no lock
        # of ours here): what is committed at that instant must include this observation.
        stored_at_puback[mid] = stored_patient_ids(db, device.name)

    with DeviceConnection(server.mqtt_port, device, version, on_puback=on_puback) as conn:
        conn.subscribe(f"{device.name}/FHIRIngest/accepted")
        conn.subscribe(f"{device.name}/FHIRIngest/rejected")
        patient_of: dict[int, str] = {}
        for i in range(30):
            patient = f"p{version}-{i}"
            patient_of[conn.publish(INGEST, observation(str(90 + i % 10), patient))] = patient
        mids = list(patient_of)
        assert [conn.puback(m) for m in mids] == [0] * 30
        replies = [conn.expect((f"{device.name}/FHIRIngest/accepted",))[1] for _ in mids]
    assert all(patient_of[m] in stored_at_puback[m] for m in mids)
    assert count_for_thing(db, device.name) == 30
    ids = {r["observationId"] for r in replies}
    assert len(ids) == 30 and all(isinstance(r["timestamp"], int) for r in replies)
    stored = fhir_get(server, f"Observation/{replies[0]['observationId']}")
    assert stored["status"] == "final"
    assert stored["device"] == {"reference": f"Device/{device.name}"}
    assert stored["code"]["text"] == "Battery Percentage"
    assert stored["subject"]["reference"].startswith(f"Patient/p{version}-")
    bundle = fhir_get(server, f"Observation?device={device.name}&_count=100")
    assert bundle["total"] == 30
    # Provisioning made the thing's FHIR Device resource.
    devices = fhir_get(server, f"Device?identifier={device.name}")
    assert devices["total"] == 1
    assert devices["entry"][0]["resource"]["serialNumber"]


def test_a_standard_fhir_client_pages_searches_and_reads_them_back(
    server: LanternProcess, device: Device
) -> None:
    """fhirpy (an independent FHIR client) against /fhir: search across pages by following the
    Bundle's next links, read by id, Device search, and a refused token."""
    patient = f"fhirpy-{uuid.uuid4().hex[:6]}"
    with DeviceConnection(server.mqtt_port, device, 5) as conn:
        mids = [conn.publish(INGEST, observation(str(60 + i), patient)) for i in range(23)]
        assert [conn.puback(m) for m in mids] == [0] * 23
    client = SyncFHIRClient(f"{server.http_url}/fhir", authorization=admin(server)["Authorization"])
    found = client.resources("Observation").search(device=device.name).limit(5).fetch_all()
    assert len(found) == 23 and len({o.id for o in found}) == 23  # five pages of at most 5
    assert sorted(o["valueQuantity"]["value"] for o in found) == list(range(60, 83))
    by_patient = client.resources("Observation").search(subject=f"Patient/{patient}").fetch_all()
    assert {o.id for o in by_patient} == {o.id for o in found}
    read = client.reference("Observation", found[0].id).to_resource()
    assert read.serialize() == found[0].serialize()
    Observation.model_validate(read.serialize())  # valid R4 (fhir.resources)
    assert read["device"]["reference"] == f"Device/{device.name}"
    devices = client.resources("Device").search(identifier=device.name).fetch_all()
    assert [d.id for d in devices] == [device.name] and devices[0]["serialNumber"]
    stranger = SyncFHIRClient(f"{server.http_url}/fhir", authorization="Bearer not-a-token")
    with pytest.raises(AuthorizationError) as refused:
        stranger.resources("Observation").search(device=device.name).fetch()
    assert json.loads(str(refused.value))["issue"][0]["code"] == "login"


BAD_PAYLOADS = [
    (b"not json", "payload", "InvalidJson"),
    (b"[1, 2]", "payload", "InvalidPayload"),
    (b'{"unit": "%", "coding": [{"code": "c", "system": "s"}]}', "value", "MissingField"),
    (b'{"value": "abc", "unit": "%", "coding": [{"code": "c", "system": "s"}]}', "value", None),
    (b'{"value": 1, "unit": 5, "coding": [{"code": "c", "system": "s"}]}', "unit", None),
    (b'{"value": 1, "unit": "%", "coding": []}', "coding", None),
    (b'{"value": 1, "unit": "%", "coding": [{"system": "s"}]}', "coding[0].code", None),
    (b'{"value": 1, "unit": "%", "coding": "c"}', "coding", None),
    (
        b'{"value": 1, "unit": "%", "coding": [{"code": "c\\u0000", "system": "s"}]}',
        "coding[0].code",
        None,
    ),
    (
        b'{"value": 1, "unit": "%", "coding": [{"code": "c", "system": "s"}], "patientId": 7}',
        "patientId",
        None,
    ),
    (b'{"value": "' + b"1" * 40000 + b'"}', "payload", "PayloadTooLarge"),
]


def test_a_batch_that_cannot_commit_fails_every_publish_in_it_and_stores_none(
    server: LanternProcess, device: Device
) -> None:
    """While the database refuses observations, every QoS 1 PUBLISH gets PUBACK 0x80 and a
    rejected reply (statusCode 500), and nothing is stored; then the server stores again."""
    db = stored_db(server)
    rejected = f"{device.name}/FHIRIngest/rejected"
    accepted = f"{device.name}/FHIRIngest/accepted"
    with DeviceConnection(server.mqtt_port, device, 5) as conn:
        conn.subscribe(accepted)
        conn.subscribe(rejected)
        with observations_refused(db):
            mids = [conn.publish(INGEST, observation("97", f"refused-{i}")) for i in range(20)]
            assert [conn.puback(m) for m in mids] == [UNSPECIFIED_ERROR] * 20
            for _ in mids:
                topic, body = conn.expect((rejected, accepted))
                assert topic == rejected
                assert body["statusCode"] == 500 and body["errorCode"] == "InternalFailure"
            assert count_for_thing(db, device.name) == 0
        assert conn.puback(conn.publish(INGEST, observation("98", "after"))) == 0
        assert conn.expect((rejected, accepted))[0] == accepted
    assert stored_patient_ids(db, device.name) == {"after"}


def test_bad_payloads_get_0x99_and_a_rejected_reply_naming_the_field(
    server: LanternProcess, device: Device
) -> None:
    rejected = f"{device.name}/FHIRIngest/rejected"
    with DeviceConnection(server.mqtt_port, device, 5) as conn:
        conn.subscribe(f"{device.name}/FHIRIngest/accepted")
        conn.subscribe(rejected)
        for payload, field, code in BAD_PAYLOADS:
            mid = conn.publish(INGEST, payload)
            assert conn.puback(mid) == PAYLOAD_FORMAT_INVALID, field
            topic, body = conn.expect((rejected, f"{device.name}/FHIRIngest/accepted"))
            assert topic == rejected
            assert body["statusCode"] == 400
            assert field in body["errorMessage"], (field, body)
            if code is not None:
                assert body["errorCode"] == code
    assert count_for_thing(stored_db(server), device.name) == 0


def test_mqtt311_bad_payload_gets_a_rejected_reply(server: LanternProcess, device: Device) -> None:
    rejected = f"{device.name}/FHIRIngest/rejected"
    with DeviceConnection(server.mqtt_port, device, 4) as conn:
        conn.subscribe(rejected)
        mid = conn.publish(INGEST, b'{"value": "x1", "unit": "%", "coding": []}')
        assert conn.puback(mid) == 0  # 3.1.1 PUBACKs carry no reason
        _, body = conn.expect((rejected,))
    assert "value" in body["errorMessage"]
    assert count_for_thing(stored_db(server), device.name) == 0


class SdkDevice:
    """The AWS IoT Device SDK v2 MQTT 5 client over mTLS, as the seed's devices connect."""

    def __init__(self, server: LanternProcess, device: Device) -> None:
        self.connected = threading.Event()
        self.failures: list[object] = []
        self.received: list[tuple[str, bytes]] = []
        self.got = threading.Condition()

        def on_publish(data: mqtt5.PublishReceivedData) -> None:
            with self.got:
                self.received.append((data.publish_packet.topic, data.publish_packet.payload))
                self.got.notify_all()

        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="localhost",
            port=server.mqtt_port,
            cert_filepath=str(device.cert),
            pri_key_filepath=str(device.key),
            ca_filepath=str(device.ca),
            client_id=device.name,
            on_publish_received=on_publish,
            on_lifecycle_connection_success=lambda event: self.connected.set(),
            on_lifecycle_connection_failure=lambda event: self.failures.append(event),
        )

    def __enter__(self) -> SdkDevice:
        self.client.start()
        assert self.connected.wait(WAIT), self.failures
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()

    def subscribe(self, *topics: str) -> None:
        sub = mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(t, mqtt5.QoS.AT_LEAST_ONCE) for t in topics]
        )
        suback = self.client.subscribe(sub).result(WAIT)
        assert all(c.value < 0x80 for c in suback.reason_codes), suback.reason_codes

    def publish(self, topic: str, payload: bytes) -> mqtt5.PubackPacket:
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        result = self.client.publish(packet).result(WAIT)
        assert isinstance(result.puback, mqtt5.PubackPacket)
        return result.puback

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.received) >= count, WAIT), self.received
            return list(self.received)


def test_awsiotsdk_mqtt5_client_records_observations(
    server: LanternProcess, device: Device
) -> None:
    accepted = f"{device.name}/FHIRIngest/accepted"
    rejected = f"{device.name}/FHIRIngest/rejected"
    db = stored_db(server)
    with SdkDevice(server, device) as sdk:
        sdk.subscribe(accepted, rejected)
        for i in range(5):
            puback = sdk.publish(INGEST, observation(72.5 + i, f"sdk-{i}"))
            assert puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
            # The PUBACK came after the commit.
            assert f"sdk-{i}" in stored_patient_ids(db, device.name)
        bad = sdk.publish(INGEST, b'{"value": true, "unit": "bpm", "coding": []}')
        assert bad.reason_code == mqtt5.PubackReasonCode.PAYLOAD_FORMAT_INVALID
        got = sdk.wait_for(6)
    topics = [t for t, _ in got]
    assert topics.count(accepted) == 5 and topics.count(rejected) == 1
    body = json.loads(next(p for t, p in got if t == rejected))
    assert body["statusCode"] == 400 and "value" in body["errorMessage"]
    assert count_for_thing(db, device.name) == 5


def test_file_link_arrives_on_the_device_topic_and_the_put_is_stored(
    server: LanternProcess, device: Device
) -> None:
    data = bytes(range(256)) * 300
    with DeviceConnection(server.mqtt_port, device, 5) as conn:
        conn.subscribe(device.name)
        conn.subscribe(f"{device.name}/CreateFileUploadLink/rejected")
        mid = conn.publish(
            LINK, json.dumps({"fileName": "pic", "contentType": "image/png"}).encode()
        )
        assert conn.puback(mid) == 0
        _, link = conn.expect((device.name,))
        mid = conn.publish(
            LINK, json.dumps({"fileName": "../x", "contentType": "image/png"}).encode()
        )
        assert conn.puback(mid) == PAYLOAD_FORMAT_INVALID
        topic, refused = conn.expect((device.name, f"{device.name}/CreateFileUploadLink/rejected"))
        assert topic.endswith("/rejected") and "fileName" in refused["errorMessage"]
    url = link["uploadUrl"]
    wrong = httpx.put(url, content=data, headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415 or 400 <= wrong.status_code < 500
    put = httpx.put(url, content=data, headers={"Content-Type": "image/png"})
    assert put.status_code == 201, put.text
    assert put.json()["sha256"] == hashlib.sha256(data).hexdigest()
    again = httpx.put(url, content=data, headers={"Content-Type": "image/png"})
    assert again.status_code in (409, 410, 403), again.text
    listed = httpx.get(
        f"{server.http_url}/files", params={"thing": device.name}, headers=admin(server)
    ).json()["files"]
    assert [(f["fileName"], f["size"], f["fileId"]) for f in listed] == [
        ("pic", len(data), link["fileId"])
    ]


def lantern(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lantern", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_device_commands_upload_an_observation_and_a_file(
    server: LanternProcess, device: Device, tmp_path: Path
) -> None:
    conn = ["--deviceName", device.name, "--endpoint", f"localhost:{server.mqtt_port}"]
    conn += ["--certs-dir", str(device.certs_dir)]
    done = lantern(
        "device", "upload-observation", *conn,
        "--payloadValue", "100", "--unit", "%",
        "--code", "9750d5e5-d766-4793-a97d-16179578cc4d",
        "--codeSystem", "http://lifeomic.com/fhir/devices",
        "--codeDisplay", "Battery Percentage", "--patientId", "pat-7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    observation_id = done.stdout.strip().splitlines()[-1]
    stored = fhir_get(server, f"Observation/{observation_id}")
    assert stored["valueQuantity"] == {"value": 100, "unit": "%"}
    assert stored["subject"] == {"reference": "Patient/pat-7"}

    refused = lantern(
        "device", "upload-observation", *conn, "--payloadValue", "lots", "--unit", "%",
        "--code", "c", "--codeSystem", "http://example.org",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "rejected" in refused.stderr and "value" in refused.stderr
    assert count_for_thing(stored_db(server), device.name) == 1

    picture = tmp_path / "pic.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200_000))
    done = lantern("device", "upload-file", *conn, "--fileName", "dice", "--filePath", str(picture))
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    assert "dice" in done.stdout and "image/png" in done.stdout and digest in done.stdout
    listed = httpx.get(
        f"{server.http_url}/files", params={"thing": device.name}, headers=admin(server)
    ).json()["files"]
    assert [(f["fileName"], f["contentType"], f["sha256"]) for f in listed] == [
        ("dice", "image/png", digest)
    ]

    missing = lantern("device", "upload-file", *conn, "--fileName", "x", "--filePath", "/nope")
    assert missing.returncode == 1 and "--filePath" in missing.stderr
    no_cert = lantern(
        "device", "upload-observation", "--deviceName", "ghost", "--certs-dir", str(tmp_path),
        "--payloadValue", "1", "--unit", "%", "--code", "c", "--codeSystem", "s",
    )  # fmt: skip
    assert no_cert.returncode == 1 and "does not exist" in no_cert.stderr
