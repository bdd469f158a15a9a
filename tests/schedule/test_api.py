"""``/schedules`` over HTTP: validation errors name the field and change nothing; keys are
isolated; scope is enforced at creation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Request

from lantern.api.app import create_app
from lantern.api.push import ApiKeyRefused
from lantern.api.schedules import schedules_router

from .conftest import Harness, Key, body

KEYS = {"secret-a": Key("key_a"), "secret-b": Key("key_b"), "secret-int": Key("key_i", "internal")}


async def fake_auth(request: Request) -> Key:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    key = KEYS.get(secret) if scheme == "Bearer" else None
    if key is None:
        raise ApiKeyRefused(401, "invalid_api_key", "unknown key")
    return key


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app([schedules_router(harness.service, fake_auth)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def auth(secret: str = "secret-a") -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def count(client: httpx.AsyncClient, secret: str = "secret-a") -> int:
    r = await client.get("/schedules", headers=auth(secret))
    return len(r.json()["schedules"])


async def test_create_then_read_list_pause_resume_delete(client: httpx.AsyncClient) -> None:
    r = await client.post("/schedules", json=body(), headers=auth())
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["id"]
    assert r.headers["location"] == f"/schedules/{sid}"
    assert created["next_fire_times"][:2] == [
        "2025-01-06T09:00:00-05:00",
        "2025-01-07T09:00:00-05:00",
    ]
    assert created["state"] == "active" and created["times"] == ["09:00"]
    assert (await client.get(f"/schedules/{sid}", headers=auth())).json() == created
    r = await client.patch(f"/schedules/{sid}", json={"paused": True}, headers=auth())
    assert r.json()["state"] == "paused" and r.json()["next_fire_times"] == []
    r = await client.patch(f"/schedules/{sid}", json={"paused": False}, headers=auth())
    assert r.json()["state"] == "active"
    r = await client.get(f"/schedules/{sid}/history", headers=auth())
    assert r.json() == {"schedule_id": sid, "occurrences": []}
    assert (await client.delete(f"/schedules/{sid}", headers=auth())).status_code == 204
    assert (await client.get(f"/schedules/{sid}", headers=auth())).status_code == 404


async def test_a_key_sees_only_its_own_schedules(client: httpx.AsyncClient) -> None:
    sid = (await client.post("/schedules", json=body(), headers=auth())).json()["id"]
    other = auth("secret-b")
    assert await count(client, "secret-b") == 0
    for method, path, kw in [
        ("GET", f"/schedules/{sid}", {}),
        ("GET", f"/schedules/{sid}/history", {}),
        ("PATCH", f"/schedules/{sid}", {"json": {"paused": True}}),
        ("DELETE", f"/schedules/{sid}", {}),
    ]:
        r = await client.request(method, path, headers=other, **kw)
        assert r.status_code == 404 and r.json()["code"] == "schedule_not_found"
    got = (await client.get(f"/schedules/{sid}", headers=auth())).json()
    assert got["state"] == "active"  # untouched by the other key


async def test_missing_or_unknown_key_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post("/schedules", json=body())
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    r = await client.get("/schedules", headers=auth("nope"))
    assert r.status_code == 401


async def test_destination_outside_scope_is_403_and_nothing_stored(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/schedules",
        json=body(destinations=["apns:" + "ab" * 32, "mailto:a@b.org"]),
        headers=auth(),
    )
    assert r.status_code == 403 and r.json()["code"] == "scope_denied"
    assert "mailto" in r.json()["error"]
    assert await count(client) == 0
    r = await client.post(
        "/schedules", json=body(destinations=["mailto:a@b.org"]), headers=auth("secret-int")
    )
    assert r.status_code == 201


BAD_FIELDS = [
    ({"activity_id": None}, "activity_id", "missing_field"),
    ({"activity_id": ""}, "activity_id", "invalid_activity_id"),
    ({"participant_id": 5}, "participant_id", "invalid_participant_id"),
    ({"destinations": []}, "destinations", "invalid_destinations"),
    ({"destinations": ["nope"]}, "destinations", "invalid_destinations"),
    ({"destinations": ["pager:123"]}, "destinations", "invalid_destinations"),
    ({"destinations": ["apns:"]}, "destinations", "invalid_destinations"),
    ({"destinations": ["apns:ab", "apns:ab"]}, "destinations", "invalid_destinations"),
    ({"title": "x" * 257}, "title", "invalid_title"),
    ({"message": None}, "message", "missing_field"),
    ({"timezone": "Mars/Base"}, "timezone", "invalid_timezone"),
    ({"timezone": None}, "timezone", "missing_field"),
    ({"start": "yesterday"}, "start", "invalid_start"),
    ({"start": "2020-01-01T00:00:00", "repeat": "none", "times": None}, "start", "invalid_start"),
    ({"end": "2024-12-31T00:00:00"}, "end", "invalid_end"),
    ({"repeat": "yearly"}, "repeat", "invalid_repeat"),
    ({"repeat": None}, "repeat", "cron_or_repeat"),
    ({"cron": "0 9 * * *"}, "repeat", "cron_or_repeat"),
    ({"repeat": None, "times": None, "cron": "0 25 * * *"}, "cron", "invalid_cron"),
    ({"times": ["9am"]}, "times", "invalid_times"),
    ({"times": "09:00"}, "times", "invalid_times"),
    ({"repeat": "custom", "times": ["09:00", "09:00"]}, "times", "invalid_times"),
    ({"colour": "red"}, "colour", "unknown_field"),
]


@pytest.mark.parametrize(("change", "field", "code"), BAD_FIELDS)
async def test_every_bad_field_is_400_naming_it_and_stores_nothing(
    client: httpx.AsyncClient, change: dict[str, object], field: str, code: str
) -> None:
    b = body()
    b.update(change)
    r = await client.post(
        "/schedules", json={k: v for k, v in b.items() if v is not None}, headers=auth()
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code and r.json()["field"] == field
    assert field in r.json()["error"]
    assert await count(client) == 0


async def test_malformed_bodies_and_queries(client: httpx.AsyncClient) -> None:
    r = await client.post("/schedules", content=b"{not json", headers=auth())
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    r = await client.post("/schedules", json=[1, 2], headers=auth())
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    r = await client.post("/schedules", content=b" " * 70000, headers=auth())
    assert r.status_code == 413
    r = await client.get("/schedules?limit=0", headers=auth())
    assert r.status_code == 400 and r.json()["field"] == "limit"
    sid = (await client.post("/schedules", json=body(), headers=auth())).json()["id"]
    r = await client.patch(f"/schedules/{sid}", json={"paused": "yes"}, headers=auth())
    assert r.status_code == 400 and r.json()["field"] == "paused"
    r = await client.patch(f"/schedules/{sid}", json={"title": "new"}, headers=auth())
    assert r.status_code == 400 and r.json()["code"] == "unknown_field"
    assert (await client.get(f"/schedules/{sid}", headers=auth())).json()["title"] == "Daily survey"
