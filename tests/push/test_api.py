"""POST /push as callers use it: the seed's cURL body, legacy shapes, every error status."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from conftest import DEVICE, FakeClock, apns_settings, make_dispatcher
from lantern.api.app import create_app
from lantern.api.push import push_router
from lantern.push.dispatch import PushDispatcher
from lantern.push.keys import KeyService
from lantern.push.providers.apns import APNsProvider
from lantern.push.queries import PushQueries
from lantern.store import Database
from support.apns_standin import APNsStandIn, Reply

SEED_BODY = {
    "device_token": f"apns:{DEVICE}",
    "payload": {
        "aps": {
            "alert": "Hello world!",
            "badge": 0,
            "sound": "default",
            "mutable-content": 1,
            "content-available": 1,
        },
        "notificationId": "test123",
        "expiry": 84600000,
        "actions": [],
    },
}


@dataclass
class Gateway:
    http: httpx.AsyncClient
    keys: KeyService
    dispatcher: PushDispatcher
    standin: APNsStandIn
    external: str
    internal: str


@pytest.fixture
async def gateway(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock
) -> AsyncIterator[Gateway]:
    keys = KeyService(sqlite_db)
    dispatcher = make_dispatcher(
        sqlite_db, {"apns": APNsProvider(apns_settings(apns_standin))}, clock
    )
    app = create_app([push_router(dispatcher, keys, max_request_bytes=8192)])
    _, external = await keys.create("Collaborator", "external")
    _, internal = await keys.create("Team", "internal")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield Gateway(http, keys, dispatcher, apns_standin, external, internal)
    await dispatcher.close()


async def test_the_seed_curl_body_is_delivered(gateway: Gateway) -> None:
    response = await gateway.http.post("/push", json={"api_key": gateway.external, **SEED_BODY})
    assert response.status_code == 200
    assert response.json()["id"].startswith("dlv_")
    assert gateway.standin.count_for(DEVICE) == 1


async def test_bearer_header_works_instead_of_api_key(gateway: Gateway) -> None:
    response = await gateway.http.post(
        "/push", json=SEED_BODY, headers={"Authorization": f"Bearer {gateway.external}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("push_type", ["apns", "ios"])
async def test_legacy_push_type_with_unprefixed_token(gateway: Gateway, push_type: str) -> None:
    body = {
        "api_key": gateway.external,
        "push_type": push_type,
        "device_token": DEVICE,
        "payload": {"aps": {"alert": "hi"}},
    }
    response = await gateway.http.post("/push", json=body)
    assert response.status_code == 200, response.text
    assert gateway.standin.count_for(DEVICE) == 1


async def test_the_prefix_wins_over_push_type(gateway: Gateway) -> None:
    body = {"api_key": gateway.external, "push_type": "gcm", **SEED_BODY}
    assert (await gateway.http.post("/push", json=body)).status_code == 200
    assert gateway.standin.count_for(DEVICE) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_token": f"apns:{DEVICE}"}, "payload"),
        ({"payload": {"aps": {}}}, "device_token"),
        ({"device_token": 42, "payload": {"aps": {}}}, "device_token"),
        ({"device_token": f"apns:{DEVICE}", "payload": "hello"}, "payload"),
        ({"device_token": f"apns:{DEVICE}", "payload": []}, "payload"),
        ({"device_token": "carrier-pigeon:xyz", "payload": {"aps": {}}}, "device_token"),
        ({"device_token": "apns:", "payload": {"aps": {}}}, "device_token"),
        ({"device_token": DEVICE, "push_type": "fax", "payload": {"aps": {}}}, "push_type"),
        ({"device_token": DEVICE, "push_type": 3, "payload": {"aps": {}}}, "push_type"),
        ({"device_token": f"apns:{DEVICE}", "payload": {"alert": "no aps"}}, "payload.aps"),
    ],
)
async def test_every_wrong_body_shape_is_400_naming_the_field(
    gateway: Gateway, body: dict[str, object], field: str
) -> None:
    response = await gateway.http.post("/push", json={"api_key": gateway.external, **body})
    assert response.status_code == 400
    data = response.json()
    assert data["field"] == field and data["code"] and data["error"]
    assert gateway.standin.requests == []


async def test_non_json_and_non_object_bodies_are_400(gateway: Gateway) -> None:
    for content in (b"{not json", b"[1, 2]", b'"text"'):
        response = await gateway.http.post(
            "/push", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400 and response.json()["field"] == "body"


async def test_missing_unknown_and_malformed_keys_are_401(gateway: Gateway) -> None:
    missing = await gateway.http.post("/push", json=SEED_BODY)
    assert missing.status_code == 401 and missing.json()["code"] == "missing_api_key"
    unknown = await gateway.http.post("/push", json={"api_key": "guess", **SEED_BODY})
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_api_key"
    basic = await gateway.http.post(
        "/push", json=SEED_BODY, headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert basic.status_code == 401
    wrong_type = await gateway.http.post("/push", json={"api_key": 12345, **SEED_BODY})
    assert wrong_type.status_code == 400 and wrong_type.json()["field"] == "api_key"
    assert gateway.standin.requests == []


async def test_revoked_key_is_401(gateway: Gateway) -> None:
    key, secret = await gateway.keys.create("Gone", "external")
    await gateway.keys.revoke(key.id, "test")
    response = await gateway.http.post("/push", json={"api_key": secret, **SEED_BODY})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("token", "payload"),
    [
        ("mailto:participant@example.org", {"subject": "s", "body": "<p>b</p>"}),
        ("sms:+15555550100", {"text": "hi"}),
        ("slack:T000/B000/XXXX", {"content": "hi"}),
    ],
)
async def test_external_keys_may_not_use_internal_schemes(
    gateway: Gateway, sqlite_db: Database, token: str, payload: dict[str, object]
) -> None:
    body = {"api_key": gateway.external, "device_token": token, "payload": payload}
    response = await gateway.http.post("/push", json=body)
    assert response.status_code == 403 and response.json()["code"] == "scope_denied"
    assert await PushQueries(sqlite_db).deliveries() == []


async def test_internal_key_reaching_an_unconfigured_provider_gets_503(gateway: Gateway) -> None:
    body = {
        "api_key": gateway.internal,
        "device_token": "sms:+15555550100",
        "payload": {"text": "x"},
    }
    response = await gateway.http.post("/push", json=body)
    answer = response.json()
    assert response.status_code == 503 and answer["reason"] == "NotConfigured"
    assert answer["code"] == "provider_unavailable"
    assert answer["error"] == (
        "no sms provider is configured on this gateway; set push.sns.enabled = true "
        "(LANTERN_PUSH__SNS__ENABLED=true) to enable it"
    )


@pytest.mark.parametrize(
    ("token", "setting"),
    [
        ("gcm:abc123", "push.fcm.service_account_file"),
        ("mailto:a@example.org", "push.smtp.host"),
        ("slack:T000/B000/XXXX", "push.slack.enabled"),
    ],
)
async def test_unconfigured_provider_503_names_the_setting_that_enables_it(
    gateway: Gateway, token: str, setting: str
) -> None:
    body = {"api_key": gateway.internal, "device_token": token, "payload": {"text": "x"}}
    response = await gateway.http.post("/push", json=body)  # only APNs is configured here
    answer = response.json()
    assert response.status_code == 503 and answer["reason"] == "NotConfigured", answer
    assert answer["error"].startswith(f"no {token.split(':')[0]} provider is configured")
    assert setting in answer["error"] and "to enable it" in answer["error"], answer


async def test_too_large_bodies_are_413(gateway: Gateway) -> None:
    big = {"api_key": gateway.external, **SEED_BODY, "padding": "x" * 9000}
    response = await gateway.http.post("/push", json=big)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    long_alert = {
        "api_key": gateway.external,
        "device_token": f"apns:{DEVICE}",
        "payload": {"aps": {"alert": "y" * 5000}},
    }
    response = await gateway.http.post("/push", json=long_alert)
    assert response.status_code == 413 and response.json()["field"] == "payload"
    assert gateway.standin.requests == []


async def test_rate_limit_gives_429_with_retry_after(gateway: Gateway) -> None:
    _, secret = await gateway.keys.create("Slow", "external", rate_per_minute=3)
    statuses = []
    for _ in range(4):
        response = await gateway.http.post("/push", json={"api_key": secret, **SEED_BODY})
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
    assert gateway.standin.count_for(DEVICE) == 3


async def test_dead_token_is_410_and_provider_failures_are_502(gateway: Gateway) -> None:
    gateway.standin.answer(DEVICE, Reply(410, "Unregistered", timestamp_ms=1_700_000_000_000))
    response = await gateway.http.post("/push", json={"api_key": gateway.external, **SEED_BODY})
    assert response.status_code == 410
    assert response.json()["code"] == "dead_token" and response.json()["reason"] == "Unregistered"
    gateway.standin.answer(DEVICE, *[Reply(500, "InternalServerError")] * 100)
    response = await gateway.http.post("/push", json={"api_key": gateway.external, **SEED_BODY})
    assert response.status_code == 502 and response.json()["code"] == "provider_failed"


async def test_metrics_count_per_provider_and_outcome(gateway: Gateway) -> None:
    await gateway.http.post("/push", json={"api_key": gateway.external, **SEED_BODY})
    gateway.standin.answer(DEVICE, Reply(410, "Unregistered"))
    await gateway.http.post("/push", json={"api_key": gateway.external, **SEED_BODY})
    text = (await gateway.http.get("/metrics")).text
    assert 'lantern_push_notifications_total{outcome="delivered",provider="apns"} 1.0' in text
    assert 'lantern_push_notifications_total{outcome="dead_token",provider="apns"} 1.0' in text
    assert 'lantern_push_latency_seconds_count{outcome="delivered",provider="apns"} 1.0' in text


async def rename_table(db: Database, old: str, new: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_a_push_whose_log_row_cannot_be_stored_says_so_and_is_counted(
    gateway: Gateway, sqlite_db: Database
) -> None:
    await rename_table(sqlite_db, "push_deliveries", "push_deliveries_gone")  # the log "fails"
    body = {"api_key": gateway.external, **SEED_BODY}
    response = await gateway.http.post("/push", json=body)
    # The provider accepted it: still a success, marked as not logged.
    assert response.status_code == 200
    assert response.json()["logged"] is False and response.json()["id"].startswith("dlv_")
    assert gateway.standin.count_for(DEVICE) == 1
    gateway.standin.answer(DEVICE, Reply(410, "Unregistered"))
    response = await gateway.http.post("/push", json=body)
    assert response.status_code == 410 and response.json()["logged"] is False
    text_metrics = (await gateway.http.get("/metrics")).text
    assert "lantern_push_delivery_log_failures_total 2.0" in text_metrics
    await rename_table(sqlite_db, "push_deliveries_gone", "push_deliveries")
    response = await gateway.http.post("/push", json=body)
    assert response.status_code == 200 and "logged" not in response.json()
    stored = await PushQueries(sqlite_db).deliveries()
    assert [r.id for r in stored] == [response.json()["id"]]  # only what was logged


async def test_payload_marker_never_reaches_logs_or_the_database(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, tmp_path: Path, sqlite_db: Database
) -> None:
    marker = "MARKER-7f3a9c-participant-mood"
    caplog.set_level(logging.DEBUG)
    body = {"api_key": gateway.external, **SEED_BODY}
    body["payload"] = {"aps": {"alert": marker}, "notificationId": marker}
    assert (await gateway.http.post("/push", json=body)).status_code == 200
    gateway.standin.answer(
        DEVICE, Reply(410, "Unregistered"), *[Reply(503, "ServiceUnavailable")] * 3
    )
    for _ in range(2):
        await gateway.http.post("/push", json=body)
    bad = {
        "api_key": gateway.external,
        "device_token": f"apns:{DEVICE}",
        "payload": {"aps": {"alert": marker, "priority": 9}},
    }
    assert (await gateway.http.post("/push", json=bad)).status_code == 400
    assert marker not in caplog.text
    assert DEVICE not in caplog.text
    assert gateway.external not in caplog.text
    assert "bearer" not in caplog.text.lower()
    await gateway.dispatcher.deliveries.close()
    await sqlite_db.close()
    for file in tmp_path.glob("test.db*"):
        content = file.read_bytes()
        assert marker.encode() not in content
        assert DEVICE.encode() not in content


async def test_text_that_is_not_unicode_is_a_400_not_a_crash(gateway: Gateway) -> None:
    body = (
        b'{"api_key": "%s", "device_token": "apns:%s", "payload": {"aps": {"alert": "\\ud800"}}}'
        % (gateway.external.encode(), DEVICE.encode())
    )
    response = await gateway.http.post(
        "/push", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["field"] == "payload"
    assert gateway.standin.requests == []


async def test_an_unexpected_failure_is_a_json_500_and_the_log_has_no_content(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = "MARKER-5e1d-unexpected"

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom while handling {marker}")

    monkeypatch.setattr(gateway.dispatcher, "dispatch", broken)
    body = {"api_key": gateway.external, **SEED_BODY}
    body["payload"] = {"aps": {"alert": marker}}
    response = await gateway.http.post("/push", json=body)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "RuntimeError" in caplog.text and "POST /push failed" in caplog.text
    assert marker not in caplog.text
    # The gateway still serves the next request.
    monkeypatch.undo()
    assert (
        await gateway.http.post("/push", json=SEED_BODY | {"api_key": gateway.external})
    ).status_code == 200


async def test_other_methods_on_push_are_405(gateway: Gateway) -> None:
    response = await gateway.http.get("/push")
    assert response.status_code == 405
