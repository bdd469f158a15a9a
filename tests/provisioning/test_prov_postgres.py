"""The registry and the Identity API on PostgreSQL: the same flow and refusals as on SQLite."""

from __future__ import annotations

import json

import pytest

from lantern.pki import CertificateAuthority
from lantern.provisioning.service import ProvisioningService
from lantern.settings.provisioning import ProvisioningSettings
from lantern.store import Database
from lantern.store import registry as reg
from support.postgres import fresh_postgres_database
from support.provisioning_env import Env, FakeClock, call

pytestmark = pytest.mark.postgres


async def test_provision_and_sweep_on_postgres(ca: CertificateAuthority) -> None:
    async with fresh_postgres_database() as url:
        db = await Database.open(url)
        try:
            clock = FakeClock()
            service = ProvisioningService(
                db, ca, ProvisioningSettings(key_type="ec-p256"), clock=clock
            )
            env = Env(db, ca, clock, service, claim=None)  # type: ignore[arg-type]
            env.claim = await env.new_claim()
            create = "$aws/certificates/create/json"
            created = json.loads(
                (
                    await call(
                        service.create_keys_and_certificate, create, b"{}", env.claim, fmt="json"
                    )
                )
                .replies[0]
                .payload
            )
            stale = json.loads(
                (
                    await call(
                        service.create_keys_and_certificate, create, b"{}", env.claim, fmt="json"
                    )
                )
                .replies[0]
                .payload
            )
            topic = "$aws/provisioning-templates/DefaultProvisioningTemplate/provision/json"
            payload = json.dumps(
                {
                    "certificateOwnershipToken": created["certificateOwnershipToken"],
                    "parameters": {
                        "SerialNumber": "PG1",
                        "Manufacturer": "m",
                        "Name": "n",
                        "Model": "x",
                    },
                }
            ).encode()
            result = await call(
                service.register_thing,
                topic,
                payload,
                env.claim,
                template="DefaultProvisioningTemplate",
                fmt="json",
            )
            assert result.replies[0].topic.endswith("/accepted")
            again = await call(
                service.register_thing,
                topic,
                payload,
                env.claim,
                template="DefaultProvisioningTemplate",
                fmt="json",
            )
            assert json.loads(again.replies[0].payload)["errorCode"] == (
                "InvalidCertificateOwnershipToken"
            )
            clock.now += 3601
            assert await service.sweep() == 1
            async with db.connect() as conn:
                assert await reg.get_certificate(conn, stale["certificateId"]) is None
                thing = await reg.get_thing(conn, f"PG1-{created['certificateId'][:12]}")
                assert thing is not None and thing.serial_number == "PG1"
                assert [t.name for t in await reg.list_things(conn)] == [thing.name]
        finally:
            await db.close()
