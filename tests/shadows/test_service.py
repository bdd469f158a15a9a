"""The shadow service over the real store, on SQLite and PostgreSQL: reads, group-committed
changes, optimistic concurrency, limits that store nothing, failed commits, thing deletion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import insert

from lantern.shadows.document import parse_update
from lantern.shadows.errors import ShadowError
from lantern.shadows.service import Deleted, ShadowService, Updated
from lantern.store import Database
from lantern.store.registry import delete_thing
from lantern.store.schema.registry import things
from lantern.store.shadows import ShadowsStore, ShadowUnitOfWork

T = TypeVar("T")


async def add_things(db: Database, *names: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            insert(things),
            [
                {
                    "name": n,
                    "project": "default",
                    "attributes": {},
                    "created_at": 0,
                    "updated_at": 0,
                }
                for n in names
            ],
        )


@pytest.fixture
async def service(db: Database) -> AsyncIterator[ShadowService]:
    await add_things(db, "dev1", "dev2")
    svc = ShadowService(ShadowsStore(db.transactions))
    yield svc
    await svc.close()


async def refused(call: Any) -> ShadowError:
    with pytest.raises(ShadowError) as caught:
        await call
    return caught.value


def req(body: dict[str, Any]) -> Any:
    return parse_update(body)


async def test_update_get_delete_round_trip(service: ShadowService) -> None:
    missing = await refused(service.get("dev1", ""))
    assert (missing.status, missing.message) == (404, "No shadow exists with name: 'dev1'")
    first = await service.update("dev1", "", req({"state": {"desired": {"on": True}}}))
    assert isinstance(first, Updated) and first.previous is None and first.current.version == 1
    await service.update("dev1", "", req({"state": {"reported": {"on": False}}, "version": 1}))
    got = await service.get("dev1", "")
    assert (got.version, got.desired, got.reported) == (2, {"on": True}, {"on": False})
    deleted = await service.delete("dev1", "")
    assert deleted == Deleted(2)
    assert (await refused(service.get("dev1", ""))).status == 404
    assert (await refused(service.delete("dev1", ""))).status == 404
    # Created again: the version follows the deleted shadow's, the old state is gone.
    again = await service.update("dev1", "", req({"state": {"reported": {"x": 1}}}))
    assert again.previous is None and again.current.version == 3
    assert (await service.get("dev1", "")).desired == {}


async def test_named_shadows_are_separate_and_listed_in_pages(service: ShadowService) -> None:
    await service.update("dev1", "", req({"state": {"desired": {"classic": 1}}}))
    for name in ("b", "a", "c", "gone"):
        await service.update("dev1", name, req({"state": {"reported": {"n": name}}}))
    await service.delete("dev1", "gone")
    assert (await service.get("dev1", "a")).reported == {"n": "a"}
    assert (await service.get("dev1", "")).desired == {"classic": 1}
    assert await service.named_shadows("dev1", "", 2) == ["a", "b"]
    assert await service.named_shadows("dev1", "b", 10) == ["c"]
    assert await service.named_shadows("dev2", "", 10) == []
    nothing = await refused(service.named_shadows("nope", "", 10))
    assert (nothing.status, nothing.message) == (404, "Thing not found")
    named_missing = await refused(service.get("dev1", "zzz"))
    assert named_missing.message == "No shadow exists with name: 'zzz'"


async def test_unknown_thing_is_404_and_stores_nothing(
    service: ShadowService, db: Database
) -> None:
    error = await refused(service.update("ghost", "", req({"state": {"desired": {"a": 1}}})))
    assert (error.status, error.message) == (404, "Thing not found")
    assert (await refused(service.get("ghost", ""))).message == "Thing not found"


async def test_concurrent_updates_with_one_version_exactly_one_wins(service: ShadowService) -> None:
    await service.update("dev1", "", req({"state": {"reported": {"n": 0}}}))
    results = await asyncio.gather(
        *[
            service.update("dev1", "", req({"state": {"reported": {"n": i}}, "version": 1}))
            for i in range(1, 21)
        ],
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Updated)]
    lost = [r for r in results if isinstance(r, ShadowError)]
    assert len(won) == 1 and len(lost) == 19
    assert all((e.status, e.message) == (409, "Version conflict") for e in lost)
    stored = await service.get("dev1", "")
    assert stored.version == 2 and stored.reported == {"n": won[0].current.reported["n"]}


async def test_limits_store_nothing(service: ShadowService) -> None:
    await service.update("dev1", "", req({"state": {"reported": {"a": 1}}}))
    error = await refused(
        service.update("dev1", "", req({"state": {"reported": {"b": "x" * 9000}}}))
    )
    assert error.status == 413
    conflict = await refused(service.update("dev1", "", req({"state": {}, "version": 7})))
    assert conflict.status == 409
    stored = await service.get("dev1", "")
    assert (stored.version, stored.reported) == (1, {"a": 1})
    # A failed delete's version check leaves it in place.
    assert (await refused(service.delete("dev1", "", version=5))).status == 409
    assert (await service.get("dev1", "")).version == 1


async def test_deleting_a_thing_deletes_its_shadows(service: ShadowService, db: Database) -> None:
    await service.update("dev1", "", req({"state": {"reported": {"a": 1}}}))
    await service.update("dev1", "named", req({"state": {"reported": {"a": 1}}}))
    await service.update("dev2", "", req({"state": {"reported": {"b": 1}}}))
    async with db.transaction() as conn:
        assert await delete_thing(conn, "dev1")
    assert (await refused(service.get("dev1", ""))).message == "Thing not found"
    await add_things(db, "dev1")  # a new thing of that name starts with no shadows
    assert (await refused(service.get("dev1", "named"))).status == 404
    assert (await service.get("dev2", "")).reported == {"b": 1}


class FailingCommits:
    """Runs each batch for real, then fails its transaction (rolled back)."""

    def __init__(self, db: Database) -> None:
        self.store = ShadowsStore(db.transactions)

    async def write(self, fn: Callable[[ShadowUnitOfWork], T]) -> T:
        def doomed(uow: ShadowUnitOfWork) -> T:
            fn(uow)
            raise RuntimeError("disk full")

        return await self.store.write(doomed)

    async def read(self, fn: Callable[[ShadowUnitOfWork], T]) -> T:
        return await self.store.read(fn)


async def test_a_batch_that_cannot_commit_fails_every_caller_and_stores_nothing(
    service: ShadowService, db: Database
) -> None:
    await service.update("dev1", "", req({"state": {"reported": {"a": 0}}}))
    failing = ShadowService(FailingCommits(db))
    try:
        results = await asyncio.gather(
            *[
                failing.update("dev1", "", req({"state": {"reported": {"a": i}}}))
                for i in range(1, 6)
            ],
            failing.update("dev2", "", req({"state": {"reported": {"a": 1}}})),
            return_exceptions=True,
        )
    finally:
        await failing.close()
    assert all(isinstance(r, ShadowError) and r.status == 500 for r in results)
    assert all(r.message == "Internal service failure" for r in results)  # type: ignore[union-attr]
    stored = await service.get("dev1", "")
    assert (stored.version, stored.reported) == (1, {"a": 0})
    assert (await refused(service.get("dev2", ""))).status == 404


async def test_changes_are_group_committed(service: ShadowService) -> None:
    before = service.batches
    await asyncio.gather(
        *[
            service.update("dev1", f"s{i}", req({"state": {"reported": {"i": i}}}))
            for i in range(200)
        ]
    )
    assert service.batches - before < 200
    assert len(await service.named_shadows("dev1", "", 100)) == 100


async def test_two_writers_on_one_database_never_lose_an_update(
    service: ShadowService, db: Database
) -> None:
    """Two servers' writers (two Database handles) update the same shadows at once: on
    PostgreSQL the compare-and-swap re-applies what the other changed first; on SQLite the write
    lock serialises the batches. Every accepted update has its own version, none is lost."""
    await service.update("dev1", "", req({"state": {"reported": {"n": 0}}}))
    other_db = await Database.open(
        db.engine.url.render_as_string(hide_password=False), migrate=False
    )
    other = ShadowService(ShadowsStore(other_db.transactions))
    try:
        results = await asyncio.gather(
            *[
                (service if i % 2 else other).update(
                    "dev1", "", req({"state": {"reported": {f"k{i % 7}": i}}})
                )
                for i in range(120)
            ]
        )
    finally:
        await other.close()
        await other_db.close()
    versions = sorted(r.current.version for r in results)
    assert versions == list(range(2, 122))
    assert (await service.get("dev1", "")).version == 121


class Unattached:
    """A notifier whose MQTT server is gone (as the router before ``attach``)."""

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        from lantern.gateway.errors import GatewayError

        raise GatewayError("the MQTT server is not attached")


async def test_a_broadcast_that_cannot_be_sent_does_not_fail_the_committed_change(
    db: Database,
) -> None:
    await add_things(db, "dev1")
    service = ShadowService(ShadowsStore(db.transactions), Unattached())
    try:
        updated = await service.update("dev1", "", req({"state": {"desired": {"a": 1}}}))
        service.publish(service.broadcasts("dev1", "", updated, None, 0))
        assert (await service.get("dev1", "")).version == 1
    finally:
        await service.close()
