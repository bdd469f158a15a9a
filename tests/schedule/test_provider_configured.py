"""A schedule whose destination no provider of the gateway can send to is refused (400
``provider_not_configured`` naming the setting that enables it), with nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Request

from lantern.api.app import create_app
from lantern.api.schedules import schedules_router
from lantern.push.factory import build_providers
from lantern.schedule import ScheduleService
from lantern.settings.push import PushSettings

from .conftest import Harness, Key, body

KEY = Key("key_i", "internal")


async def as_key(request: Request) -> Key:
    return KEY


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """``/schedules`` of a gateway that has only an APNs provider."""
    service = ScheduleService(
        harness.store, harness.clock, lambda _s: frozenset({"apns", "gcm", "mailto", "slack"}),
        schemes_configured=lambda: frozenset({"apns"}),
    )  # fmt: skip
    app = create_app([schedules_router(service, as_key)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize(
    ("destination", "setting"),
    [
        ("gcm:" + "f" * 40, "push.fcm.service_account_file"),
        ("mailto:nurse@example.org", "push.ses.sender"),
        ("slack:T0/B0/abcdefghij", "push.slack.enabled = true"),
    ],
)
async def test_unconfigured_provider_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, destination: str, setting: str
) -> None:
    r = await client.post("/schedules", json=body(destinations=["apns:" + "ab" * 32, destination]))
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["code"] == "provider_not_configured" and answer["field"] == "destinations"
    scheme = destination.split(":")[0]
    assert f"no {scheme} provider is configured on this gateway" in answer["error"]
    assert setting in answer["error"]
    assert (await client.get("/schedules")).json()["schedules"] == []


async def test_configured_provider_is_accepted(client: httpx.AsyncClient) -> None:
    r = await client.post("/schedules", json=body())
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"apns": {"key_file": "k.p8", "key_id": "K", "team_id": "T", "topic": "org.app"}},
        {"slack": {"enabled": True}, "sns": {"enabled": True}},
        {"smtp": {"host": "mail.example.org"}},
        {"ses": {"sender": "a@example.org"}, "fcm": {"service_account_file": "sa.json"}},
    ],
)
def test_configured_schemes_are_the_providers_the_gateway_builds(
    environment: dict[str, object],
) -> None:
    """The CLI's check (from settings) and the server's (its providers) agree."""
    settings = PushSettings.model_validate(environment)
    assert settings.configured_schemes() == set(build_providers(settings))
