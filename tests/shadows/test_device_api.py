"""The shadow handlers on the gateway router, at the handler level with a real database: reply
topics and recipients, and the 429 for more than 10 requests in flight on one connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from lantern.gateway import DeviceRequest, ReservedTopicRouter, ThingIdentity
from lantern.gateway.router import HandlerResult
from lantern.shadows.device_api import ShadowDeviceAPI
from lantern.shadows.service import ShadowService
from lantern.store import Database
from lantern.store.shadows import ShadowsStore, ShadowUnitOfWork
from shadows.test_service import add_things

T = TypeVar("T")


class GatedWrites:
    """The real store, but every write waits for ``gate``."""

    def __init__(self, db: Database) -> None:
        self.store = ShadowsStore(db.transactions)
        self.gate = asyncio.Event()

    async def write(self, fn: Callable[[ShadowUnitOfWork], T]) -> T:
        await self.gate.wait()
        return await self.store.write(fn)

    async def read(self, fn: Callable[[ShadowUnitOfWork], T]) -> T:
        return await self.store.read(fn)


@pytest.fixture
async def units(db: Database) -> AsyncIterator[GatedWrites]:
    await add_things(db, "dev1")
    yield GatedWrites(db)


async def call(
    router: ReservedTopicRouter, topic: str, body: Any, client: str = "dev1"
) -> HandlerResult:
    found = router.resolve(topic)
    assert found is not None, topic
    handler, params = found
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = DeviceRequest(
        topic, payload, ThingIdentity("c", "dev1", "default"), client, 1, params
    )
    return await handler(request)


def replies(result: HandlerResult) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.to, r.topic, json.loads(r.payload)) for r in result.replies]


async def test_reply_topics_and_recipients(units: GatedWrites) -> None:
    units.gate.set()
    service = ShadowService(units)
    router = ReservedTopicRouter()
    ShadowDeviceAPI(service).register(router)
    base = "$aws/things/dev1/shadow/name/cfg"
    try:
        result = replies(await call(router, f"{base}/update", {"state": {"desired": {"a": 1}}}))
        assert [(to, topic) for to, topic, _ in result] == [
            ("requester", f"{base}/update/accepted"),
            ("subscribers", f"{base}/update/delta"),
            ("subscribers", f"{base}/update/documents"),
        ]
        result = replies(await call(router, f"{base}/delete", {"clientToken": "d"}))
        assert result == [
            ("subscribers", f"{base}/delete/accepted", result[0][2]),
        ]
        assert result[0][2]["version"] == 1 and result[0][2]["clientToken"] == "d"
        result = replies(await call(router, f"{base}/delete", b""))
        assert [(to, topic) for to, topic, _ in result] == [
            ("requester", f"{base}/delete/rejected")
        ]
        assert result[0][2]["code"] == 404
        long_name = "$aws/things/dev1/shadow/name/" + "n" * 65 + "/get"
        result = replies(await call(router, long_name, b""))
        assert result[0][2]["code"] == 400 and result[0][2]["message"] == "Invalid shadow name"
        # Reply topics are not request topics: a device publishing there gets no answer.
        assert router.resolve(f"{base}/update/accepted") is None
    finally:
        await service.close()


async def test_more_than_ten_in_flight_on_one_connection_is_429(units: GatedWrites) -> None:
    service = ShadowService(units)
    router = ReservedTopicRouter()
    ShadowDeviceAPI(service).register(router)
    topic = "$aws/things/dev1/shadow/update"
    try:
        waiting = [
            asyncio.create_task(
                call(router, topic, {"state": {"reported": {"i": i}}, "clientToken": f"t{i}"})
            )
            for i in range(10)
        ]
        await asyncio.sleep(0.05)
        eleventh = replies(await call(router, topic, {"state": {}, "clientToken": "late"}))
        assert eleventh[0][1] == f"{topic}/rejected"
        body = eleventh[0][2]
        assert (body["code"], body["message"], body["clientToken"]) == (
            429,
            "Too Many Requests",
            "late",
        )
        # Another connection is not limited by this one's requests.
        other = asyncio.create_task(call(router, topic, {"state": {}}, client="dev1-app"))
        await asyncio.sleep(0.05)
        units.gate.set()
        done = [replies(r) for r in await asyncio.gather(*waiting, other)]
        assert all(d[0][1] == f"{topic}/accepted" for d in done)
        # With the ten answered, the connection may send again.
        again = replies(await call(router, topic, {"state": {}}))
        assert again[0][1] == f"{topic}/accepted" and again[0][2]["version"] == 12
    finally:
        units.gate.set()
        await service.close()
