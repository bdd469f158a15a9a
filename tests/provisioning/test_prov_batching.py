"""Group commit and the key pool: a failing request is rolled back alone, a batch that cannot
commit fails every request in it and stores nothing (SQLite and PostgreSQL), concurrent requests
for one token get exactly one thing, pooled keys are made ahead and handed out once each."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from lantern.pki import (
    CertificateAuthority,
    IssuedCertificate,
    KeyType,
    generate_private_key,
    private_key_pem,
)
from lantern.provisioning.keypool import KeyPool
from lantern.provisioning.service import ProvisioningService
from lantern.provisioning.writer import RegistryWriter
from lantern.settings.provisioning import ProvisioningSettings
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.group_commit import CommitFailed
from lantern.store.registry import (
    RegistryConflict,
    RegistryStore,
    RegistryUnit,
    RegistryUnitOfWork,
)
from support.provisioning_env import Env, call

T = TypeVar("T")
CREATE = "$aws/certificates/create/json"
REGISTER = "$aws/provisioning-templates/DefaultProvisioningTemplate/provision/json"


def cert_record(cert_id: str, project: str = "default") -> reg.CertificateRecord:
    return reg.CertificateRecord(
        cert_id, "pem", "device", "PENDING_ACTIVATION", project, None, 1, 1
    )


async def stored_certificates(db: Database) -> set[str]:
    """Certificate ids as another connection sees them (committed data only)."""
    async with db.connect() as conn:
        return {c.id for c in await reg.list_certificates(conn, None)}


def insert(cert_id: str) -> Callable[[RegistryUnitOfWork], str]:
    def request(uow: RegistryUnitOfWork) -> str:
        uow.insert_certificate(cert_record(cert_id))
        return cert_id

    return request


async def test_a_failing_request_is_rolled_back_alone(db: Database) -> None:
    writer = RegistryWriter(RegistryStore(db.transactions))
    await writer.write(insert("taken"))

    def refused(uow: RegistryUnitOfWork) -> None:
        uow.insert_certificate(cert_record("refused"))
        raise ValueError("refused after writing")

    try:
        results = await asyncio.gather(
            *(writer.write(insert(f"good{n}")) for n in range(5)),
            writer.write(refused),
            writer.write(insert("taken")),  # a unique key already used: a conflict
            *(writer.write(insert(f"good{n}")) for n in range(5, 10)),
            return_exceptions=True,
        )
    finally:
        await writer.close()
    assert results[:5] + results[7:] == [f"good{n}" for n in range(10)]
    assert isinstance(results[5], ValueError) and str(results[5]) == "refused after writing"
    assert isinstance(results[6], RegistryConflict)
    # Group commit: the twelve requests shared a few transactions (1 + at most 2 here).
    assert writer.batches <= 3
    # Nothing of the failed requests, everything of the others.
    assert await stored_certificates(db) == {"taken"} | {f"good{n}" for n in range(10)}


async def defer_foreign_keys(db: Database) -> Callable[[RegistryUnitOfWork], None]:
    """A request after which the COMMIT of its transaction fails: it inserts a certificate of a
    project that does not exist, with the foreign key checked only at COMMIT."""
    if db.is_sqlite:
        defer = "PRAGMA defer_foreign_keys = ON"
    else:
        async with db.transaction() as conn:
            name = (
                await conn.exec_driver_sql(
                    "SELECT conname FROM pg_constraint WHERE conrelid = 'certificates'::regclass "
                    "AND confrelid = 'projects'::regclass"
                )
            ).scalar_one()
            await conn.exec_driver_sql(
                f'ALTER TABLE certificates ALTER CONSTRAINT "{name}" DEFERRABLE'
            )
        defer = "SET CONSTRAINTS ALL DEFERRED"

    def poison(uow: RegistryUnitOfWork) -> None:
        assert isinstance(uow, RegistryUnit)
        uow.conn.exec_driver_sql(defer)
        uow.insert_certificate(cert_record("orphan", project="no-such-project"))

    return poison


async def test_a_batch_that_cannot_commit_fails_every_request_and_stores_nothing(
    db: Database,
) -> None:
    poison = await defer_foreign_keys(db)
    writer = RegistryWriter(RegistryStore(db.transactions))
    try:
        # One request first, so that the next ones queue up and go in one batch.
        first = asyncio.ensure_future(writer.write(insert("first")))
        await asyncio.sleep(0)
        batch = [writer.write(insert(f"c{n}")) for n in range(4)]
        results = await asyncio.gather(
            *batch[:2], writer.write(poison), *batch[2:], return_exceptions=True
        )
        assert await first == "first"
        assert all(isinstance(r, CommitFailed) for r in results), results
        assert await stored_certificates(db) == {"first"}
        # The writer goes on: the next batch commits.
        assert await writer.write(insert("after")) == "after"
    finally:
        await writer.close()
    assert await stored_certificates(db) == {"first", "after"}


class PoisonedUnits:
    """The registry, but while ``on`` every write batch also carries ``poison``: its
    transaction then fails at COMMIT."""

    def __init__(self, inner: RegistryStore, poison: Callable[[RegistryUnitOfWork], None]):
        self.inner, self.poison, self.on = inner, poison, True

    async def read(self, fn: Callable[[RegistryUnitOfWork], T]) -> T:
        return await self.inner.read(fn)

    async def write(self, fn: Callable[[RegistryUnitOfWork], T]) -> T:
        return await self.inner.write(fn)

    async def write_each(self, fns: Sequence[Callable[[RegistryUnitOfWork], Any]]) -> list[Any]:
        if not self.on:
            return await self.inner.write_each(fns)
        return (await self.inner.write_each([*fns, self.poison]))[:-1]


async def test_devices_whose_batch_cannot_commit_are_told_to_retry(env: Env) -> None:
    units = PoisonedUnits(RegistryStore(env.db.transactions), await defer_foreign_keys(env.db))
    service = ProvisioningService(
        env.db, env.ca, ProvisioningSettings(key_type="ec-p256"), clock=env.clock, units=units
    )
    create = service.create_keys_and_certificate
    try:
        results = await asyncio.gather(
            *(call(create, CREATE, b"{}", env.claim, fmt="json") for _ in range(3))
        )
        for result in results:
            (reply,) = result.replies
            assert reply.topic == f"{CREATE}/rejected"
            body = json.loads(reply.payload)
            assert (body["statusCode"], body["errorCode"]) == (500, "InternalFailure")
            assert body["errorMessage"] == "Lantern failed to process the request; try again"
        # Nothing of those batches: only the claim's certificate.
        assert await stored_certificates(env.db) == {env.claim.certificate_id}
        units.on = False
        again = await call(create, CREATE, b"{}", env.claim, fmt="json")
        assert again.replies[0].topic == f"{CREATE}/accepted"
        assert len(await stored_certificates(env.db)) == 2
    finally:
        await service.close()


async def test_concurrent_registrations_with_one_token_make_one_thing(env: Env) -> None:
    created = json.loads(
        (await call(env.service.create_keys_and_certificate, CREATE, b"{}", env.claim, fmt="json"))
        .replies[0]
        .payload
    )
    payload = json.dumps(
        {
            "certificateOwnershipToken": created["certificateOwnershipToken"],
            "parameters": {"SerialNumber": "S1", "Manufacturer": "m", "Name": "n", "Model": "x"},
        }
    ).encode()
    results = await asyncio.gather(
        *(
            call(
                env.service.register_thing,
                REGISTER,
                payload,
                env.claim,
                template="DefaultProvisioningTemplate",
                fmt="json",
            )
            for _ in range(8)
        )
    )
    topics = sorted(r.replies[0].topic for r in results)
    assert topics.count(f"{REGISTER}/accepted") == 1
    assert topics.count(f"{REGISTER}/rejected") == 7
    async with env.db.connect() as conn:
        assert len(await reg.list_things(conn)) == 1


async def test_key_pool_hands_each_key_out_once(ca: CertificateAuthority) -> None:
    counter = itertools.count()

    def make() -> IssuedCertificate:
        next(counter)
        return ca.issue("pooled", KeyType.EC_P256)

    pool = KeyPool(make, size=4, workers=2)
    try:
        taken = await asyncio.gather(*(pool.take() for _ in range(10)))
        assert len({t.certificate_id for t in taken}) == 10
        assert all(t.private_key_pem for t in taken)
    finally:
        pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.take()


async def test_key_pool_reports_a_failing_generator() -> None:
    def make() -> IssuedCertificate:
        raise OSError("no entropy")

    pool = KeyPool(make, size=2, workers=1)
    try:
        with pytest.raises(OSError, match="no entropy"):
            await asyncio.wait_for(pool.take(), 10)
    finally:
        pool.close()


async def test_key_pool_fills_ahead_when_asked() -> None:
    made = itertools.count()
    pool: KeyPool[int] = KeyPool(lambda: next(made), size=5, workers=2)
    try:
        pool.fill()
        # A nice-19 thread makes them: on a busy machine it may wait its turn for a while.
        for _ in range(1000):
            if pool.ready == 5:
                break
            await asyncio.sleep(0.01)
        assert pool.ready == 5
        assert {await pool.take() for _ in range(8)} == set(range(8))
    finally:
        pool.close()


async def test_a_pooled_key_gets_a_certificate_valid_from_when_it_is_taken(
    ca: CertificateAuthority,
) -> None:
    key = generate_private_key(KeyType.EC_P256)
    await asyncio.sleep(1.1)  # the key waited in the pool
    before = datetime.now(UTC).replace(microsecond=0)
    issued = ca.issue("pooled", key=key)
    assert issued.certificate.public_key() == key.public_key()
    assert issued.certificate.not_valid_before_utc >= before - timedelta(minutes=5)
    assert issued.private_key_pem == private_key_pem(key)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux's")
async def test_keys_made_ahead_use_idle_cpu_and_waited_for_keys_do_not() -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    ahead: KeyPool[int] = KeyPool(niceness, size=3, workers=2)
    on_demand: KeyPool[int] = KeyPool(niceness, size=0, workers=2)
    try:
        ahead.fill()
        for _ in range(1000):  # nice 19: may wait its turn on a busy machine
            if ahead.ready == 3:
                break
            await asyncio.sleep(0.01)
        assert [await ahead.take() for _ in range(3)] == [19, 19, 19]
        normal = os.getpriority(os.PRIO_PROCESS, 0)
        assert await asyncio.gather(*(on_demand.take() for _ in range(2))) == [normal] * 2
    finally:
        ahead.close()
        on_demand.close()
