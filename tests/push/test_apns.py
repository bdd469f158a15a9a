"""APNs against the HTTP/2 TLS stand-in: headers, reasons, retries, JWT and connection reuse."""

from __future__ import annotations

import json

import pytest

from conftest import DEVICE, FakeClock, apns_settings, make_dispatcher
from lantern.push.dispatch import PushDispatcher
from lantern.push.errors import PayloadTooLarge, PushRequestInvalid
from lantern.push.keys import ApiKey
from lantern.push.providers.apns import APNsProvider, classify
from lantern.push.providers.base import (
    CallerError,
    DeadToken,
    ProviderConfigError,
    TemporaryFailure,
)
from lantern.store import Database
from lantern.store.push import DeliveryStore
from support.apns_standin import APNsStandIn, Reply, SigningKey

KEY = ApiKey("key_test", "Org", "external", None)
SEED_PAYLOAD = {
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
}


async def test_seed_payload_is_delivered_with_the_b4_headers(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn
) -> None:
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", SEED_PAYLOAD)
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("delivered", 200, 1)
    [request] = apns_standin.requests
    assert request.headers[":path"] == f"/3/device/{DEVICE}"
    assert request.headers["apns-topic"] == apns_standin.topic
    assert request.headers["apns-push-type"] == "alert"
    assert int(request.headers["apns-expiration"]) > 1_000_000_000
    body = json.loads(request.body)
    assert body["aps"]["alert"] == "Hello world!" and body["notificationId"] == "test123"


async def test_legacy_aps_header_fields_become_headers_and_leave_the_body(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn
) -> None:
    payload = {
        "aps": {
            "content-available": 1,
            "push-type": "background",
            "priority": 5,
            "expiration": 1900000000,
            "collapse-id": "daily",
            "id": "123e4567-e89b-12d3-a456-426614174000",
        }
    }
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", payload)
    assert outcome.status == "delivered"
    [request] = apns_standin.requests
    assert request.headers["apns-push-type"] == "background"
    assert request.headers["apns-priority"] == "5"
    assert request.headers["apns-expiration"] == "1900000000"
    assert request.headers["apns-collapse-id"] == "daily"
    assert request.headers["apns-id"] == "123e4567-e89b-12d3-a456-426614174000"
    assert json.loads(request.body) == {"aps": {"content-available": 1}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"alert": "no aps"}, "payload.aps"),
        ({"aps": "text"}, "payload.aps"),
        ({"aps": {"alert": "x", "push-type": "fax"}}, "payload.aps.push-type"),
        ({"aps": {"alert": "x", "priority": 7}}, "payload.aps.priority"),
        ({"aps": {"alert": "x", "expiration": "soon"}}, "payload.aps.expiration"),
        ({"aps": {"alert": "x", "collapse-id": "c" * 65}}, "payload.aps.collapse-id"),
        ({"aps": {"alert": "x", "collapse-id": "a\r\nx-evil: 1"}}, "payload.aps.collapse-id"),
        ({"aps": {"alert": "x", "collapse-id": " padded"}}, "payload.aps.collapse-id"),
        ({"aps": {"alert": "x", "collapse-id": "\ud800"}}, "payload.aps.collapse-id"),
        ({"aps": {"alert": "\ud800"}}, "payload"),
        ({"aps": {"alert": "x", "id": "not-a-uuid"}}, "payload.aps.id"),
        ({"aps": {"alert": "x"}, "expiry": -1}, "payload.expiry"),
        ({"aps": {"alert": "x"}, "actions": "none"}, "payload.actions"),
    ],
)
async def test_bad_apns_payloads_name_the_field_and_send_nothing(
    apns_dispatcher: PushDispatcher,
    apns_standin: APNsStandIn,
    payload: dict[str, object],
    field: str,
) -> None:
    with pytest.raises(PushRequestInvalid) as info:
        await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", payload)
    assert info.value.field == field
    assert apns_standin.requests == []


async def test_bad_token_and_oversized_payload_are_refused_before_sending(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn
) -> None:
    with pytest.raises(PushRequestInvalid) as info:
        await apns_dispatcher.dispatch(KEY, "apns:not-hex!", {"aps": {"alert": "x"}})
    assert info.value.field == "device_token"
    with pytest.raises(PayloadTooLarge):
        await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x" * 5000}})
    assert apns_standin.requests == []


async def test_unregistered_is_a_dead_token_with_its_timestamp_and_is_not_retried(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn, sqlite_db: Database
) -> None:
    apns_standin.answer(DEVICE, Reply(410, "Unregistered", timestamp_ms=1_700_000_000_000))
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
    assert (outcome.status, outcome.http_status, outcome.reason) == (
        "dead_token",
        410,
        "Unregistered",
    )
    assert outcome.token_invalid_since == 1_700_000_000.0
    assert apns_standin.count_for(DEVICE) == 1
    [row] = await DeliveryStore(sqlite_db).recent()
    assert (row.status, row.reason, row.key_id, row.scheme) == (
        "dead_token",
        "Unregistered",
        KEY.id,
        "apns",
    )
    assert DEVICE not in row.address_hash


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (410, "Unregistered", DeadToken),
        (400, "BadDeviceToken", DeadToken),
        (400, "DeviceTokenNotForTopic", DeadToken),
        (429, "TooManyRequests", TemporaryFailure),
        (429, "TooManyProviderTokenUpdates", TemporaryFailure),
        (403, "ExpiredProviderToken", TemporaryFailure),
        (500, "InternalServerError", TemporaryFailure),
        (503, "ServiceUnavailable", TemporaryFailure),
        (503, "Shutdown", TemporaryFailure),
        (403, "InvalidProviderToken", ProviderConfigError),
        (403, "BadCertificateEnvironment", ProviderConfigError),
        (400, "TopicDisallowed", ProviderConfigError),
        (400, "BadTopic", ProviderConfigError),
        (400, "MissingTopic", ProviderConfigError),
        (400, "BadCollapseId", CallerError),
        (400, "BadExpirationDate", CallerError),
        (400, "InvalidPushType", CallerError),
        (413, "PayloadTooLarge", CallerError),
    ],
)
def test_every_apns_reason_is_classified(status: int, reason: str, expected: type) -> None:
    assert type(classify(status, reason)) is expected


@pytest.mark.parametrize(
    ("reply", "status", "http_status"),
    [
        (Reply(400, "BadDeviceToken"), "dead_token", 410),
        (Reply(400, "BadCollapseId"), "caller_error", 400),
        (Reply(403, "TopicDisallowed"), "config_error", 503),
    ],
)
async def test_non_retryable_reasons_end_after_one_attempt(
    apns_dispatcher: PushDispatcher,
    apns_standin: APNsStandIn,
    clock: FakeClock,
    reply: Reply,
    status: str,
    http_status: int,
) -> None:
    apns_standin.answer(DEVICE, reply)
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
    assert (outcome.status, outcome.http_status, outcome.attempts) == (status, http_status, 1)
    assert clock.slept == []


async def test_retryable_reasons_are_retried_with_growing_jittered_backoff(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    apns_standin.answer(
        DEVICE,
        Reply(503, "ServiceUnavailable"),
        Reply(500, "InternalServerError"),
        Reply(429, "TooManyRequests"),
    )
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
    assert (outcome.status, outcome.attempts) == ("delivered", 4)
    assert len(clock.slept) == 3
    first, second, third = clock.slept
    assert 0.05 <= first <= 0.1 and 0.1 <= second <= 0.2 and 0.2 <= third <= 0.4


async def test_retry_after_is_honoured(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    apns_standin.answer(DEVICE, Reply(429, "TooManyRequests", retry_after="3"))
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
    assert outcome.status == "delivered" and clock.slept == [3.0]


async def test_retries_stop_at_the_budget(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    apns_standin.answer(DEVICE, *[Reply(503, "ServiceUnavailable")] * 100)
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
    assert (outcome.status, outcome.http_status, outcome.reason) == (
        "failed",
        502,
        "ServiceUnavailable",
    )
    assert sum(clock.slept) < 10.0
    assert outcome.attempts == len(clock.slept) + 1 >= 4


async def test_a_retry_after_beyond_the_budget_answers_503_with_it(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    apns_standin.answer(DEVICE, Reply(429, "TooManyRequests", retry_after="60"))
    outcome = await apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
    assert (outcome.status, outcome.http_status, outcome.retry_after) == ("failed", 503, 60.0)
    assert clock.slept == [] and apns_standin.count_for(DEVICE) == 1


async def test_one_jwt_is_reused_for_50_minutes_then_renewed(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    provider = APNsProvider(apns_settings(apns_standin), clock=clock)
    apns_standin.clock = clock
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock)
    try:
        for _ in range(5):
            assert (
                await dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
            ).status == "delivered"
            clock.advance(4 * 60)  # 20 minutes in all
        assert provider.provider_token.signed == 1 and len(apns_standin.tokens_seen) == 1
        clock.advance(31 * 60)  # 51 minutes after signing
        assert (
            await dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
        ).status == "delivered"
        assert provider.provider_token.signed == 2 and len(apns_standin.tokens_seen) == 2
        # Apple refuses refreshes within 20 minutes; none happened (every push was accepted).
        assert all(r.status == 200 for r in apns_standin.requests)
    finally:
        await dispatcher.close()


async def test_expired_provider_token_is_replaced_and_the_push_retried(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    provider = APNsProvider(apns_settings(apns_standin), clock=clock)
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock)
    try:
        first = await dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
        assert first.status == "delivered"
        clock.advance(21 * 60)  # Apple refuses a new token within 20 minutes of the last
        apns_standin.answer(DEVICE, Reply(403, "ExpiredProviderToken"))
        outcome = await dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
        assert (outcome.status, outcome.attempts) == ("delivered", 2)
        assert provider.provider_token.signed == 2
    finally:
        await dispatcher.close()


async def test_many_pushes_share_one_tls_connection(
    apns_dispatcher: PushDispatcher, apns_standin: APNsStandIn
) -> None:
    import asyncio

    outcomes = await asyncio.gather(
        *(
            apns_dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": str(i)}})
            for i in range(200)
        )
    )
    assert {o.status for o in outcomes} == {"delivered"}
    assert len(apns_standin.requests) == 200
    assert apns_standin.handshakes == 1


async def test_wrong_key_id_is_a_configuration_error(
    sqlite_db: Database, apns_standin: APNsStandIn, clock: FakeClock
) -> None:
    provider = APNsProvider(apns_settings(apns_standin, key_id="WRONGKEYID"))
    dispatcher = make_dispatcher(sqlite_db, {"apns": provider}, clock)
    try:
        outcome = await dispatcher.dispatch(KEY, f"apns:{DEVICE}", {"aps": {"alert": "x"}})
        assert (outcome.status, outcome.http_status, outcome.reason) == (
            "config_error",
            503,
            "InvalidProviderToken",
        )
    finally:
        await dispatcher.close()


async def test_a_key_that_is_not_apples_fails_readiness(
    tmp_path: object, apns_standin: APNsStandIn, signing_key: SigningKey
) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.p8"
    bad.write_text("not a key")
    provider = APNsProvider(apns_settings(apns_standin, key_file=bad))
    problem = await provider.check_ready()
    assert problem is not None and "InvalidSigningKey" in problem
    good = APNsProvider(apns_settings(apns_standin))
    assert await good.check_ready() is None
