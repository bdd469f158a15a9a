"""FCM, Slack, SMTP, SES and SNS against local stand-ins speaking their protocols."""

from __future__ import annotations

import email
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from conftest import FakeClock, make_dispatcher
from lantern.push.dispatch import PushDispatcher
from lantern.push.errors import PayloadTooLarge, PushRequestInvalid
from lantern.push.keys import ApiKey
from lantern.push.providers.email_ses import SESProvider
from lantern.push.providers.email_smtp import SMTPProvider
from lantern.push.providers.fcm import FCMProvider
from lantern.push.providers.slack import SlackProvider
from lantern.push.providers.sms_sns import SNSProvider
from lantern.settings.push import (
    FCMSettings,
    SESSettings,
    SlackSettings,
    SMTPSettings,
    SNSSettings,
)
from lantern.store import Database
from support.fcm_standin import FCMReply, FCMStandIn
from support.net import free_port
from support.slack_standin import SlackStandIn

INTERNAL = ApiKey("key_internal", "Team", "internal", None)
FCM_TOKEN = "cXz1:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
HOOK = "T0001/B0001/abcdefXYZ123"


# --- FCM -------------------------------------------------------------------------------------


@pytest.fixture
def fcm_standin(tmp_path: Path) -> Iterator[FCMStandIn]:
    standin = FCMStandIn(tmp_path).start()
    yield standin
    standin.stop()


@pytest.fixture
async def fcm(
    sqlite_db: Database, fcm_standin: FCMStandIn, clock: FakeClock
) -> AsyncIterator[tuple[PushDispatcher, FCMProvider]]:
    settings = FCMSettings(
        service_account_file=fcm_standin.service_account_file,
        url=fcm_standin.url,
        token_uri=fcm_standin.token_uri,
    )
    provider = FCMProvider(settings)
    dispatcher = make_dispatcher(sqlite_db, {"gcm": provider}, clock)
    yield dispatcher, provider
    await dispatcher.close()


async def test_fcm_mints_one_oauth_token_and_reuses_it(
    fcm: tuple[PushDispatcher, FCMProvider], fcm_standin: FCMStandIn
) -> None:
    dispatcher, provider = fcm
    for _ in range(5):
        outcome = await dispatcher.dispatch(INTERNAL, f"gcm:{FCM_TOKEN}", {"data": {"a": "b"}})
        assert outcome.status == "delivered"
    assert fcm_standin.tokens_minted == 1 and provider.tokens_minted == 1
    assert fcm_standin.sent[0]["token"] == FCM_TOKEN  # split on the first colon only


async def test_fcm_token_is_refreshed_before_it_expires(
    sqlite_db: Database, fcm_standin: FCMStandIn, clock: FakeClock
) -> None:
    fcm_standin.expires_in = 240  # under the 5-minute refresh margin: renewed on every use
    provider = FCMProvider(
        FCMSettings(
            service_account_file=fcm_standin.service_account_file,
            url=fcm_standin.url,
            token_uri=fcm_standin.token_uri,
        )
    )
    dispatcher = make_dispatcher(sqlite_db, {"gcm": provider}, clock)
    try:
        for _ in range(2):
            await dispatcher.dispatch(INTERNAL, f"fcm:{FCM_TOKEN}", {"data": {"a": "b"}})
        assert fcm_standin.tokens_minted == 2
    finally:
        await dispatcher.close()


async def test_fcm_legacy_payload_is_translated(
    fcm: tuple[PushDispatcher, FCMProvider], fcm_standin: FCMStandIn
) -> None:
    dispatcher, _ = fcm
    payload = {
        "notification": {"title": "Check-in", "body": "How are you?"},
        "data": {"count": 3, "flag": True, "nested": {"x": 1}, "s": "text"},
        "priority": "high",
        "expiry": 84600000,
        "collapse_key": "daily",
    }
    outcome = await dispatcher.dispatch(INTERNAL, f"gcm:{FCM_TOKEN}", payload)
    assert outcome.status == "delivered"
    [sent] = fcm_standin.sent
    assert sent["data"] == {"count": "3", "flag": "true", "nested": '{"x":1}', "s": "text"}
    assert sent["android"] == {"priority": "HIGH", "ttl": "84600s", "collapse_key": "daily"}
    assert sent["notification"] == {"title": "Check-in", "body": "How are you?"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"to": "x", "data": {}}, "payload.to"),
        ({"data": "text"}, "payload.data"),
        ({"data": {}, "priority": "urgent"}, "payload.priority"),
        ({"data": {}, "time_to_live": -5}, "payload.time_to_live"),
        ({}, "payload"),
    ],
)
async def test_fcm_bad_payloads_name_the_field(
    fcm: tuple[PushDispatcher, FCMProvider],
    fcm_standin: FCMStandIn,
    payload: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(PushRequestInvalid) as info:
        await fcm[0].dispatch(INTERNAL, f"gcm:{FCM_TOKEN}", payload)
    assert info.value.field == field and fcm_standin.sent == []


@pytest.mark.parametrize(
    ("reply", "status", "http_status"),
    [
        (FCMReply(404, "UNREGISTERED"), "dead_token", 410),
        (FCMReply(403, "SENDER_ID_MISMATCH"), "dead_token", 410),
        (
            FCMReply(400, "INVALID_ARGUMENT", "The registration token is not valid"),
            "dead_token",
            410,
        ),
        (FCMReply(400, "INVALID_ARGUMENT", "Invalid JSON payload"), "caller_error", 400),
        (FCMReply(401, "THIRD_PARTY_AUTH_ERROR"), "config_error", 503),
        (FCMReply(429, "QUOTA_EXCEEDED"), "failed", 503),
    ],
)
async def test_fcm_error_codes_are_classified(
    fcm: tuple[PushDispatcher, FCMProvider],
    fcm_standin: FCMStandIn,
    clock: FakeClock,
    reply: FCMReply,
    status: str,
    http_status: int,
) -> None:
    fcm_standin.answer(FCM_TOKEN, reply)
    outcome = await fcm[0].dispatch(INTERNAL, f"gcm:{FCM_TOKEN}", {"data": {"a": "b"}})
    assert (outcome.status, outcome.http_status) == (status, http_status)
    assert outcome.attempts == 1 and clock.slept == []
    if reply.error_code == "QUOTA_EXCEEDED":
        assert outcome.retry_after is not None and outcome.retry_after >= 60


async def test_fcm_unavailable_and_internal_are_retried_honouring_retry_after(
    fcm: tuple[PushDispatcher, FCMProvider], fcm_standin: FCMStandIn, clock: FakeClock
) -> None:
    fcm_standin.answer(
        FCM_TOKEN, FCMReply(503, "UNAVAILABLE", retry_after="2"), FCMReply(500, "INTERNAL")
    )
    outcome = await fcm[0].dispatch(INTERNAL, f"gcm:{FCM_TOKEN}", {"data": {"a": "b"}})
    assert (outcome.status, outcome.attempts) == ("delivered", 3)
    assert clock.slept[0] == 2.0 and len(clock.slept) == 2


async def test_fcm_unreadable_service_account_fails_readiness(tmp_path: Path) -> None:
    bad = tmp_path / "sa.json"
    bad.write_text("{}")
    problem = await FCMProvider(FCMSettings(service_account_file=bad)).check_ready()
    assert problem is not None and "InvalidServiceAccount" in problem


# --- Slack -----------------------------------------------------------------------------------


@pytest.fixture
async def slack(
    sqlite_db: Database, clock: FakeClock
) -> AsyncIterator[tuple[PushDispatcher, SlackStandIn]]:
    standin = SlackStandIn().start()
    provider = SlackProvider(SlackSettings(enabled=True, base_url=standin.base_url))
    dispatcher = make_dispatcher(sqlite_db, {"slack": provider}, clock)
    yield dispatcher, standin
    await dispatcher.close()
    standin.stop()


async def test_slack_webhook_receives_text(slack: tuple[PushDispatcher, SlackStandIn]) -> None:
    dispatcher, standin = slack
    assert (
        await dispatcher.dispatch(INTERNAL, f"slack:{HOOK}", {"content": "hi"})
    ).status == "delivered"
    assert (
        await dispatcher.dispatch(INTERNAL, f"slack:{HOOK}", {"text": "yo"})
    ).status == "delivered"
    assert standin.received == [(HOOK, {"text": "hi"}), (HOOK, {"text": "yo"})]


@pytest.mark.parametrize(
    ("status", "text", "outcome", "http_status"),
    [
        (404, "no_service", "dead_token", 410),
        (410, "channel_is_archived", "dead_token", 410),
        (403, "invalid_token", "dead_token", 410),
        (400, "invalid_payload", "caller_error", 400),
    ],
)
async def test_slack_permanent_errors(
    slack: tuple[PushDispatcher, SlackStandIn],
    status: int,
    text: str,
    outcome: str,
    http_status: int,
) -> None:
    dispatcher, standin = slack
    standin.answer(HOOK, status, text)
    result = await dispatcher.dispatch(INTERNAL, f"slack:{HOOK}", {"content": "hi"})
    assert (result.status, result.http_status, result.reason, result.attempts) == (
        outcome,
        http_status,
        text,
        1,
    )


async def test_slack_429_waits_for_retry_after(
    slack: tuple[PushDispatcher, SlackStandIn], clock: FakeClock
) -> None:
    dispatcher, standin = slack
    standin.answer(HOOK, 429, "rate_limited", retry_after="1")
    result = await dispatcher.dispatch(INTERNAL, f"slack:{HOOK}", {"content": "hi"})
    assert result.status == "delivered" and clock.slept == [1.0]


async def test_slack_bad_destinations_and_payloads(
    slack: tuple[PushDispatcher, SlackStandIn],
) -> None:
    dispatcher, standin = slack
    for token, payload, field in [
        ("slack:../../etc", {"content": "x"}, "device_token"),
        (f"slack:{HOOK}", {"content": ""}, "payload.content"),
        (f"slack:{HOOK}", {"content": "x", "channel": "#general"}, "payload.channel"),
    ]:
        with pytest.raises(PushRequestInvalid) as info:
            await dispatcher.dispatch(INTERNAL, token, payload)
        assert info.value.field == field
    assert standin.received == []


# --- SMTP ------------------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
async def smtp(
    sqlite_db: Database, clock: FakeClock
) -> AsyncIterator[tuple[PushDispatcher, _Recorder]]:
    recorder = _Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = SMTPSettings(
        host="127.0.0.1", port=controller.port, tls="none", sender="study@lantern.test"
    )
    dispatcher = make_dispatcher(sqlite_db, {"mailto": SMTPProvider(settings)}, clock)
    yield dispatcher, recorder
    await dispatcher.close()
    controller.stop()


async def test_smtp_sends_html_and_text_from_the_configured_sender(
    smtp: tuple[PushDispatcher, _Recorder],
) -> None:
    dispatcher, recorder = smtp
    payload = {"subject": "Your survey", "body": "<p>Please fill in <b>today</b></p>"}
    outcome = await dispatcher.dispatch(INTERNAL, "mailto:p1@example.org", payload)
    assert outcome.status == "delivered"
    [(sender, recipients, raw)] = recorder.messages
    assert sender == "study@lantern.test" and recipients == ["p1@example.org"]
    message = email.message_from_bytes(raw)
    assert (
        message["Subject"] == "Your survey"
        and message["Cc"] is None
        and message["Reply-To"] is None
    )
    types = {part.get_content_type() for part in message.walk()}
    assert {"text/plain", "text/html"} <= types


async def test_smtp_refused_recipient_is_a_dead_address(
    smtp: tuple[PushDispatcher, _Recorder],
) -> None:
    outcome = await smtp[0].dispatch(
        INTERNAL, "mailto:gone@example.org", {"subject": "s", "body": "b"}
    )
    assert (outcome.status, outcome.reason) == ("dead_token", "RecipientRefused")


@pytest.mark.parametrize(
    ("token", "payload", "field"),
    [
        ("mailto:a@b.org", {"subject": "s", "body": "b", "cc": "x@evil.org"}, "payload.cc"),
        (
            "mailto:a@b.org",
            {"subject": "s", "body": "b", "reply_to": "x@evil.org"},
            "payload.reply_to",
        ),
        ("mailto:a@b.org", {"subject": "s", "body": "b", "from": "ceo@b.org"}, "payload.from"),
        ("mailto:a@b.org, c@d.org", {"subject": "s", "body": "b"}, "device_token"),
        ("mailto:a@b.org", {"subject": "s\r\nBcc: x@evil.org", "body": "b"}, "payload.subject"),
        ("mailto:a@b.org", {"body": "b"}, "payload.subject"),
        ("mailto:a@b.org", {"subject": "s"}, "payload.body"),
    ],
)
async def test_email_refuses_caller_controlled_recipients_and_headers(
    smtp: tuple[PushDispatcher, _Recorder], token: str, payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(PushRequestInvalid) as info:
        await smtp[0].dispatch(INTERNAL, token, payload)
    assert info.value.field == field
    assert smtp[1].messages == []


async def test_smtp_unreachable_server_fails_after_the_budget(
    sqlite_db: Database, clock: FakeClock
) -> None:
    settings = SMTPSettings(host="127.0.0.1", port=free_port(), tls="none", timeout=1)
    dispatcher = make_dispatcher(sqlite_db, {"mailto": SMTPProvider(settings)}, clock, budget=1.0)
    try:
        outcome = await dispatcher.dispatch(
            INTERNAL, "mailto:a@b.org", {"subject": "s", "body": "b"}
        )
        assert (outcome.status, outcome.http_status) == ("failed", 502)
        assert outcome.attempts > 1 and sum(clock.slept) < 1.0
    finally:
        await dispatcher.close()


# --- SES and SNS (moto server) ---------------------------------------------------------------


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


async def test_ses_sends_html_and_text_from_the_verified_sender(
    moto_url: str, sqlite_db: Database, clock: FakeClock
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    provider = SESProvider(SESSettings(sender="study@lantern.test", endpoint_url=moto_url))
    dispatcher = make_dispatcher(sqlite_db, {"mailto": provider}, clock)
    try:
        payload = {"subject": "Hello", "body": "<p>Hi</p>", "text": "Hi"}
        unverified = await dispatcher.dispatch(INTERNAL, "mailto:p@example.org", payload)
        assert (unverified.status, unverified.reason) == ("caller_error", "MessageRejected")
        client = await provider.aws.get()
        await client.verify_email_identity(EmailAddress="study@lantern.test")
        outcome = await dispatcher.dispatch(INTERNAL, "mailto:p@example.org", payload)
        assert outcome.status == "delivered"
        [sent] = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
        assert sent.source == "study@lantern.test"
        assert sent.destinations["ToAddresses"] == ["p@example.org"]
        assert sent.body == "<p>Hi</p>" or "Hi" in str(sent.body)
    finally:
        await dispatcher.close()


async def test_sns_publishes_transactional_sms_to_e164_numbers(
    moto_url: str, sqlite_db: Database, clock: FakeClock
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    provider = SNSProvider(SNSSettings(enabled=True, endpoint_url=moto_url))
    dispatcher = make_dispatcher(sqlite_db, {"sms": provider}, clock)
    try:
        outcome = await dispatcher.dispatch(
            INTERNAL, "sms:+15555550100", {"text": "Time to check in"}
        )
        assert outcome.status == "delivered"
        messages = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages
        assert [(number, text) for number, text in messages.values()] == [
            ("+15555550100", "Time to check in")
        ]
        for token, payload, field in [
            ("sms:5555550100", {"text": "x"}, "device_token"),
            ("sms:+0123", {"text": "x"}, "device_token"),
            ("sms:+15555550100", {"text": ""}, "payload.text"),
            ("sms:+15555550100", {"text": "x", "sender": "Bank"}, "payload.sender"),
        ]:
            with pytest.raises(PushRequestInvalid) as info:
                await dispatcher.dispatch(INTERNAL, token, payload)
            assert info.value.field == field
        with pytest.raises(PayloadTooLarge):
            await dispatcher.dispatch(INTERNAL, "sms:+15555550100", {"text": "x" * 1601})
        assert len(messages) == 1
    finally:
        await dispatcher.close()
