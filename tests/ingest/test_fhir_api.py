"""The FHIR read API over HTTP: auth (admin, project token, revoked), reads, searches, paging
with next links, and 400 OperationOutcomes for bad parameters."""

from __future__ import annotations

import json

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device

from lantern.api.app import create_app
from lantern.api.fhir import build_fhir_router
from lantern.ingest import tokens
from lantern.ingest.errors import TokenError
from lantern.ingest.observations import ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.store import ingest as repo
from lantern.store.ingest import open_observation_sink

from .conftest import HttpApp, add_project, add_thing, request, thing

TOPIC = "$aws/rules/FHIRIngest"


async def record(
    service: ObservationService,
    device: str,
    *,
    project: str = "default",
    patient: str | None = None,
    code: str = "8867-4",
    when: str = "2024-05-01T12:00:00+00:00",
    value: float = 60,
) -> str:
    payload: dict[str, object] = {
        "value": value,
        "unit": "bpm",
        "coding": [{"code": code, "system": "http://loinc.org", "display": "Heart rate"}],
        "effectiveDateTime": when,
    }
    if patient:
        payload["patientId"] = patient
    result = await service.handle(
        request(TOPIC, json.dumps(payload).encode(), thing(device, project))
    )
    return str(json.loads(result.replies[0].payload)["observationId"])


@pytest.fixture
async def populated(http_app: HttpApp) -> dict[str, str]:
    writer = GroupCommitWriter(open_observation_sink(http_app.db))
    await writer.start()
    service = ObservationService(writer, max_payload_bytes=4096)
    await add_project(http_app.db, "clinic")
    await add_thing(
        http_app.db,
        "dev1",
        serial_number="12345",
        manufacturer="my-company",
        model="prototype",
        device_name="my-device",
    )
    await add_thing(http_app.db, "dev:odd_name")
    await add_thing(http_app.db, "cdev", project="clinic")
    ids = {}
    for day in range(1, 8):
        ids[f"dev1-{day}"] = await record(
            service, "dev1", patient="p1", when=f"2024-05-0{day}T08:00:00+00:00", value=day
        )
    ids["other-code"] = await record(service, "dev1", code="59408-5", when="2024-06-01T00:00:00Z")
    ids["odd"] = await record(service, "dev:odd_name", when="2024-06-02T00:00:00Z")
    ids["clinic"] = await record(service, "cdev", project="clinic", patient="p1")
    await writer.stop()
    return ids


def admin(app: HttpApp) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.admin_token}"}


async def test_metadata_and_auth(http_app: HttpApp, populated: dict[str, str]) -> None:
    async with http_app.client() as client:
        meta = await client.get("/fhir/metadata")
        assert meta.status_code == 200
        assert meta.headers["content-type"].startswith("application/fhir+json")
        CapabilityStatement.model_validate(meta.json())
        oid = populated["dev1-1"]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            r = await client.get(f"/fhir/Observation/{oid}", headers=headers)
            assert r.status_code == 401
            assert r.json()["resourceType"] == "OperationOutcome"
        assert (await client.get(f"/fhir/Observation/{oid}", headers=admin(http_app))).json()[
            "id"
        ] == oid
        # a project token sees its project only
        issued = await tokens.create_token(
            http_app.db, project="clinic", scope="fhir:read", name="dashboard"
        )
        from sqlalchemy import select

        from lantern.store.schema.ingest import fhir_tokens

        async with http_app.db.connect() as conn:
            rows = [tuple(r) for r in (await conn.execute(select(fhir_tokens))).all()]
        assert rows and issued.token not in json.dumps(rows)
        clinic = {"Authorization": f"Bearer {issued.token}"}
        assert (await client.get(f"/fhir/Observation/{oid}", headers=clinic)).status_code == 404
        r = await client.get(f"/fhir/Observation/{populated['clinic']}", headers=clinic)
        assert r.status_code == 200
        bundle = (await client.get("/fhir/Observation", headers=clinic)).json()
        assert [e["resource"]["id"] for e in bundle["entry"]] == [populated["clinic"]]
        assert (await client.get("/fhir/Device/dev1", headers=clinic)).status_code == 404
        # revoked tokens stop working; the hash, not the token, is stored
        async with http_app.db.connect() as conn:
            listed = await repo.list_tokens(conn)
        assert [t.id for t in listed] == [issued.record.id]
        async with http_app.db.transaction() as conn:
            assert await repo.revoke_token(conn, issued.record.id, 1.0)
        r = await client.get(f"/fhir/Observation/{populated['clinic']}", headers=clinic)
        assert r.status_code == 401


async def test_token_errors(http_app: HttpApp) -> None:
    with pytest.raises(TokenError, match="unknown scope"):
        await tokens.create_token(http_app.db, project="default", scope="fhir:write", name="x")
    with pytest.raises(TokenError, match="no project"):
        await tokens.create_token(http_app.db, project="nope", scope="fhir:read", name="x")


async def test_observation_searches(http_app: HttpApp, populated: dict[str, str]) -> None:
    async with http_app.client() as client:

        async def ids(query: str) -> list[str]:
            r = await client.get(f"/fhir/Observation?{query}", headers=admin(http_app))
            assert r.status_code == 200, r.text
            Bundle.model_validate(r.json())
            return [e["resource"]["id"] for e in r.json().get("entry", [])]

        week = [populated[f"dev1-{d}"] for d in range(7, 0, -1)]
        assert await ids("patient=p1&device=dev1") == week
        assert await ids("subject=Patient/p1&device=Device/dev1&_sort=date") == week[::-1]
        assert await ids("code=http://loinc.org|59408-5") == [populated["other-code"]]
        assert await ids("code=59408-5") == [populated["other-code"]]
        assert await ids("code=http://other|59408-5") == []
        assert await ids("device=dev1&date=ge2024-05-03&date=le2024-05-05") == week[2:5]
        assert await ids("device=dev1&date=2024-05-04") == [populated["dev1-4"]]
        assert await ids("device=dev1&date=gt2024-05-06&date=lt2024-06") == [populated["dev1-7"]]
        assert await ids("date=ge2024-05-03T08:00:00Z&date=lt2024-05-04T08:00:00%2B00:00") == [
            populated["dev1-3"]
        ]
        odd_id = (
            await client.get("/fhir/Device?identifier=dev:odd_name", headers=admin(http_app))
        ).json()["entry"][0]["resource"]["id"]
        assert odd_id != "dev:odd_name"
        assert await ids(f"subject=Device/{odd_id}") == [populated["odd"]]
        assert await ids(f"device={odd_id}") == [populated["odd"]]


async def test_paging_follows_next_links(http_app: HttpApp, populated: dict[str, str]) -> None:
    seen: list[str] = []
    url: str | None = f"{http_app.base_url}/fhir/Observation?device=dev1&patient=p1&_count=3"
    async with http_app.client() as client:
        while url:
            bundle = (await client.get(url, headers=admin(http_app))).json()
            assert bundle["total"] == 7
            seen += [e["resource"]["id"] for e in bundle["entry"]]
            url = next((lk["url"] for lk in bundle["link"] if lk["relation"] == "next"), None)
    assert seen == [populated[f"dev1-{d}"] for d in range(7, 0, -1)]


async def test_links_use_the_address_the_caller_used_or_the_configured_public_url(
    http_app: HttpApp, populated: dict[str, str]
) -> None:
    query = "/fhir/Observation?device=dev1&_count=2"
    async with http_app.client() as client:
        headers = {**admin(http_app), "host": "fhir.internal:8443"}
        bundle = (await client.get(query, headers=headers)).json()
    links = [lk["url"] for lk in bundle["link"]] + [e["fullUrl"] for e in bundle["entry"]]
    assert links and all(u.startswith("http://fhir.internal:8443/fhir/") for u in links)

    app = create_app(
        routers=[
            build_fhir_router(
                http_app.db,
                admin_token=lambda: http_app.admin_token,
                public_url=lambda: "https://fhir.example.org/",
            )
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        bundle = (await client.get(query, headers=admin(http_app))).json()
        meta = (await client.get("/fhir/metadata")).json()
    links = [lk["url"] for lk in bundle["link"]] + [e["fullUrl"] for e in bundle["entry"]]
    assert links and all(u.startswith("https://fhir.example.org/fhir/") for u in links)
    assert meta["implementation"]["url"] == "https://fhir.example.org/fhir"


@pytest.mark.parametrize(
    "query",
    [
        "_count=0",
        "_count=abc",
        "_count=5000",
        "_offset=-1",
        "date=xx2024",
        "date=2024-13-01",
        "date=notadate",
        "subject=Group/1",
        "patient=Device/1",
        "code=a,b",
        "code=http://loinc.org|",
        "_sort=value",
        "unknown=1",
        "_format=xml",
        "patient=p1&patient=p2",
    ],
)
async def test_bad_parameters_give_400_operation_outcome(
    http_app: HttpApp, populated: dict[str, str], query: str
) -> None:
    async with http_app.client() as client:
        r = await client.get(f"/fhir/Observation?{query}", headers=admin(http_app))
    assert r.status_code == 400
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error" and outcome["issue"][0]["diagnostics"]


async def test_device_read_and_search(http_app: HttpApp, populated: dict[str, str]) -> None:
    async with http_app.client() as client:
        r = await client.get("/fhir/Device/dev1", headers=admin(http_app))
        device = Device.model_validate(r.json())
        assert device.serialNumber == "12345" and device.manufacturer == "my-company"
        assert device.modelNumber == "prototype" and device.deviceName[0].name == "my-device"
        assert device.identifier[0].value == "dev1"
        r = await client.get(
            "/fhir/Device?identifier=urn:lantern:thing-name|dev1", headers=admin(http_app)
        )
        assert [e["resource"]["id"] for e in r.json()["entry"]] == ["dev1"]
        r = await client.get("/fhir/Device?identifier=nope", headers=admin(http_app))
        assert r.json()["total"] == 0
        r = await client.get("/fhir/Device?_count=1", headers=admin(http_app))
        assert len(r.json()["entry"]) == 1
        assert any(lk["relation"] == "next" for lk in r.json()["link"])
        r = await client.get("/fhir/Device?identifier=other-system|dev1", headers=admin(http_app))
        assert r.status_code == 400
        assert (await client.get("/fhir/Device/nope", headers=admin(http_app))).status_code == 404
        odd = await client.get("/fhir/Device?identifier=dev:odd_name", headers=admin(http_app))
        odd_id = odd.json()["entry"][0]["resource"]["id"]
        r = await client.get(f"/fhir/Device/{odd_id}", headers=admin(http_app))
        assert r.json()["identifier"][0]["value"] == "dev:odd_name"
        # the Observation's device reference resolves to that Device
        obs = (
            await client.get(f"/fhir/Observation/{populated['odd']}", headers=admin(http_app))
        ).json()
        assert obs["device"]["reference"] == f"Device/{odd_id}"
