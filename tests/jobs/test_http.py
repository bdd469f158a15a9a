"""The firmware/deployment REST routes and the signed, resumable image download."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from jobs.kit import Kit
from lantern.api.app import create_app
from lantern.api.firmware import build_firmware_router, parse_range

TOKEN = "lat_test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IMAGE = os.urandom(300_000)


@pytest.fixture
async def http(kit: Kit) -> AsyncIterator[httpx.AsyncClient]:
    router = build_firmware_router(
        kit.catalog,
        kit.deployments,
        kit.queries,
        kit.signer,
        kit.clock,
        admin_token=lambda: TOKEN,
        on_change=kit.timer.tick,
    )
    app = create_app(routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lantern.test:8080") as c:
        yield c


async def upload(http: httpx.AsyncClient, data: bytes = IMAGE, version: str = "1.0.0") -> str:
    r = await http.post(
        "/v1/firmware", params={"version": version, "name": "pump"}, content=data, headers=AUTH
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["size"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    return str(body["firmwareId"])


async def firmware_url(kit: Kit, http: httpx.AsyncClient, thing: str = "dev1") -> str:
    await kit.add_things(thing)
    fw = await upload(http)
    r = await http.post("/v1/deployments", json={"firmwareId": fw, "things": [thing]}, headers=AUTH)
    assert r.status_code == 201, r.text
    job = r.json()["deploymentId"]
    d = await kit.call(thing, f"{job}/get")
    return str(d.body["execution"]["jobDocument"]["firmwareUrl"])


async def test_admin_routes_need_the_token(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/firmware"),
        ("POST", "/v1/firmware?version=1"),
        ("GET", "/v1/deployments"),
        ("POST", "/v1/deployments"),
        ("GET", "/v1/firmware/x"),
        ("DELETE", "/v1/firmware/x"),
        ("GET", "/v1/deployments/x"),
        ("POST", "/v1/deployments/x/cancel"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = await http.request(method, path, headers=headers)
            assert r.status_code == 401 and r.json()["errorCode"] == "Unauthorized"
    assert (await http.get("/v1/firmware", headers=AUTH)).json() == []


async def test_catalog_upload_list_show_delete(kit: Kit, http: httpx.AsyncClient) -> None:
    fw = await upload(http)
    listed = (await http.get("/v1/firmware", headers=AUTH)).json()
    assert [f["firmwareId"] for f in listed] == [fw]
    shown = (await http.get(f"/v1/firmware/{fw}", headers=AUTH)).json()
    assert shown["usedBy"] == [] and shown["version"] == "1.0.0" and shown["name"] == "pump"
    dup = await http.post(
        "/v1/firmware", params={"version": "1.0.0", "name": "pump"}, content=b"other", headers=AUTH
    )
    assert dup.status_code == 409
    for params, content in [({}, b"x"), ({"version": "1\n2"}, b"x"), ({"version": "2"}, b"")]:
        r = await http.post("/v1/firmware", params=params, content=content, headers=AUTH)
        assert r.status_code == 400 and r.json()["errorCode"] == "InvalidRequest", r.text
    assert len((await http.get("/v1/firmware", headers=AUTH)).json()) == 1

    await kit.add_things("dev1")
    r = await http.post(
        "/v1/deployments", json={"firmwareId": fw, "things": ["dev1"]}, headers=AUTH
    )
    job = r.json()["deploymentId"]
    refused = await http.delete(f"/v1/firmware/{fw}", headers=AUTH)
    assert refused.status_code == 409 and job in refused.json()["errorMessage"]
    assert (await http.get(f"/v1/firmware/{fw}", headers=AUTH)).json()["usedBy"] == [job]
    await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED"})
    await kit.timer.tick()
    assert (await http.delete(f"/v1/firmware/{fw}", headers=AUTH)).status_code == 200
    assert (await http.get(f"/v1/firmware/{fw}", headers=AUTH)).status_code == 404
    assert await kit.objects.stat(f"firmware/{fw}") is None


async def test_firmware_size_limit_stores_nothing(kit: Kit, http: httpx.AsyncClient) -> None:
    kit.catalog.max_bytes = 1000
    r = await http.post("/v1/firmware", params={"version": "9"}, content=b"x" * 1001, headers=AUTH)
    assert r.status_code == 413
    assert (await http.get("/v1/firmware", headers=AUTH)).json() == []


async def test_deployment_rest_create_show_cancel(kit: Kit, http: httpx.AsyncClient) -> None:
    await kit.add_things("a", "b", "c")
    fw = await upload(http)
    r = await http.post(
        "/v1/deployments",
        json={
            "firmwareId": fw,
            "things": ["a", "b", "c"],
            "maxPerMinute": 2,
            "inProgressTimeoutMinutes": 30,
            "deploymentId": "rollout-1",
            "abortConfig": {
                "criteriaList": [
                    {
                        "failureType": "FAILED",
                        "thresholdPercentage": 50,
                        "minNumberOfExecutedThings": 2,
                    }
                ]
            },
        },
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["deploymentId"] == "rollout-1" and body["status"] == "IN_PROGRESS"
    assert body["counts"] == {"QUEUED": 2, "PLANNED": 1}  # on_change ran the rollout
    await kit.call(
        "a", "rollout-1/update", {"status": "IN_PROGRESS", "statusDetails": {"percentProgress": 40}}
    )
    shown = (await http.get("/v1/deployments/rollout-1", headers=AUTH)).json()
    a = next(e for e in shown["executions"] if e["thingName"] == "a")
    assert a["status"] == "IN_PROGRESS" and a["progress"] == "40"
    c = await http.post("/v1/deployments/rollout-1/cancel", json={"force": False}, headers=AUTH)
    assert c.status_code == 200 and c.json()["canceledExecutions"] == 2
    assert c.json()["counts"] == {"CANCELED": 2, "IN_PROGRESS": 1}
    again = await http.post("/v1/deployments/rollout-1/cancel", headers=AUTH)
    assert again.status_code == 409
    forced = await http.post("/v1/deployments/rollout-1/cancel", json={"force": True}, headers=AUTH)
    assert forced.json()["counts"] == {"CANCELED": 3}
    assert [
        d["deploymentId"] for d in (await http.get("/v1/deployments", headers=AUTH)).json()
    ] == ["rollout-1"]


async def test_generated_deployment_ids_are_not_firmware_ids(
    kit: Kit, http: httpx.AsyncClient
) -> None:
    """A deployment id names the deployment (dep-<version>-<hex>), never a firmware image."""
    await kit.add_things("a")
    fw = await upload(http)
    r = await http.post("/v1/deployments", json={"firmwareId": fw, "things": ["a"]}, headers=AUTH)
    assert r.status_code == 201, r.text
    deployment_id = r.json()["deploymentId"]
    assert fw.startswith("fw-") and deployment_id.startswith("dep-")
    assert deployment_id != fw and fw not in deployment_id
    assert (await http.get(f"/v1/deployments/{fw}", headers=AUTH)).status_code == 404


# Refused while checking the request, before storage is asked anything: SQLite only.
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"things": ["a"]}, "firmwareId"),
        ({"firmwareId": "FW", "things": ["a"], "group": "g"}, "exactly one target"),
        ({"firmwareId": "FW"}, "exactly one target"),
        ({"firmwareId": "FW", "things": ["a"], "maxPerMinute": 0}, "max per minute"),
        ({"firmwareId": "FW", "things": ["a"], "inProgressTimeoutMinutes": 10081}, "timeout"),
        ({"firmwareId": "FW", "things": ["a"], "deploymentId": "has space"}, "deployment id"),
        ({"firmwareId": "FW", "things": ["a"], "deploymentId": "fw-1"}, "firmware ids do"),
        (
            {
                "firmwareId": "FW",
                "things": ["a"],
                "abortConfig": {
                    "criteriaList": [{"thresholdPercentage": 150, "minNumberOfExecutedThings": 1}]
                },
            },
            "threshold",
        ),
        ({"firmwareId": "FW", "things": ["a"], "color": "red"}, "color"),
    ],
)
async def test_invalid_deployments_are_refused_and_create_nothing(
    kit: Kit, http: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    await refused_and_nothing_created(kit, http, body, 400, needle)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"firmwareId": "FW", "things": ["a", "ghost"]}, "ghost"),
        ({"firmwareId": "nope", "things": ["a"]}, "nope"),
        ({"firmwareId": "FW", "group": "missing"}, "missing"),
    ],
)
async def test_deployments_of_missing_things_are_refused_and_create_nothing(
    kit: Kit, http: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    await refused_and_nothing_created(kit, http, body, 404, needle)


async def refused_and_nothing_created(
    kit: Kit, http: httpx.AsyncClient, body: dict[str, object], status: int, needle: str
) -> None:
    await kit.add_things("a")
    fw = await upload(http)
    payload = {k: (fw if v == "FW" else v) for k, v in body.items()}
    r = await http.post("/v1/deployments", json=payload, headers=AUTH)
    assert r.status_code == status, r.text
    assert needle in r.json()["errorMessage"]
    assert (await http.get("/v1/deployments", headers=AUTH)).json() == []
    assert (await kit.call("a", "get")).body["queuedJobs"] == []


async def test_signed_download_full_and_ranges(kit: Kit, http: httpx.AsyncClient) -> None:
    url = await firmware_url(kit, http)
    full = await http.get(url)
    assert full.status_code == 200 and full.content == IMAGE
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["etag"] == f'"{hashlib.sha256(IMAGE).hexdigest()}"'

    # An interrupted download resumes from what it has.
    have = IMAGE[:123_457]
    rest = await http.get(url, headers={"Range": f"bytes={len(have)}-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {len(have)}-{len(IMAGE) - 1}/{len(IMAGE)}"
    assert have + rest.content == IMAGE

    mid = await http.get(url, headers={"Range": "bytes=10-19"})
    assert mid.status_code == 206 and mid.content == IMAGE[10:20]
    tail = await http.get(url, headers={"Range": "bytes=-5"})
    assert tail.content == IMAGE[-5:]
    past = await http.get(url, headers={"Range": f"bytes={len(IMAGE)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(IMAGE)}"
    stale = await http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == IMAGE
    head = await http.head(url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and head.headers["content-length"] == "100"


async def test_expired_or_tampered_links_are_refused(kit: Kit, http: httpx.AsyncClient) -> None:
    url = await firmware_url(kit, http)
    parts = urlsplit(url)
    tampered = [
        url.replace("thing=dev1", "thing=dev2"),
        url.replace("expires=", "expires=9"),
        url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"),
        parts.path,  # unsigned
        url.replace(parts.path, parts.path.replace("/v1/firmware/", "/v1/firmware/fw-0")),
    ]
    for bad in tampered:
        r = await http.get(bad)
        assert r.status_code in (403, 404), bad
        if r.status_code == 403:
            assert r.json()["errorCode"] == "LinkInvalid"
    kit.clock.advance(3600)
    r = await http.get(url)
    assert r.status_code == 403 and r.json()["errorCode"] == "LinkExpired"
    # A new send of the document mints a new, valid link.
    await kit.add_things("dev9")
    fresh = (await kit.call("dev1", "$next/get")).body["execution"]["jobDocument"]["firmwareUrl"]
    assert fresh != url and (await http.get(fresh)).status_code == 200


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-200", 100) == (90, 100)
    assert parse_range("bytes=-10", 100) == (90, 100)
    assert parse_range("bytes=-1000", 100) == (0, 100)
    assert parse_range("bytes=5-", 100) == (5, 100)
    assert parse_range("bytes=0-1,5-6", 100) is None
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=x-1", 100) is None
    assert parse_range("bytes=9-1", 100) is None
    for bad in ("bytes=100-", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(bad, 100)
