"""Group commit and the key pool: a failing job is rolled back alone, concurrent requests for one
token get exactly one thing, pooled keys are made ahead and handed out once each."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from lantern.pki import (
    CertificateAuthority,
    IssuedCertificate,
    KeyType,
    generate_private_key,
    private_key_pem,
)
from lantern.provisioning.keypool import KeyPool
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.registry_worker import RegistryWorker
from support.provisioning_env import Env, call

CREATE = "$aws/certificates/create/json"
REGISTER = "$aws/provisioning-templates/DefaultProvisioningTemplate/provision/json"


def cert_record(cert_id: str) -> reg.CertificateRecord:
    return reg.CertificateRecord(
        cert_id, "pem", "device", "PENDING_ACTIVATION", "default", None, 1, 1
    )


async def test_a_failing_job_is_rolled_back_alone(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        worker = RegistryWorker.for_database(db)
        assert RegistryWorker.for_database(db) is worker

        def good(n: int) -> Callable[[Connection], int]:
            def job(conn: Connection) -> int:
                reg.insert_certificate_sync(conn, cert_record(f"good{n}"))
                return n

            return job

        def bad(conn: Connection) -> None:
            reg.insert_certificate_sync(conn, cert_record("bad"))
            raise ValueError("refused after writing")

        results = await asyncio.gather(
            *(worker.write(good(n)) for n in range(5)),
            worker.write(bad),
            *(worker.write(good(n)) for n in range(5, 10)),
            return_exceptions=True,
        )
        assert [r for r in results if not isinstance(r, Exception)] == list(range(10))
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(errors) == 1 and str(errors[0]) == "refused after writing"
        async with db.connect() as conn:
            ids = {c.id for c in await reg.list_certificates(conn)}
        assert ids == {f"good{n}" for n in range(10)}  # nothing of the failed job
        assert await worker.read(lambda c: reg.get_certificate_sync(c, "bad")) is None
    finally:
        await db.close()


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
