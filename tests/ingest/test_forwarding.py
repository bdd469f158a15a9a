"""Forwarding through the durable outbox to a local FHIR stand-in, with retries."""

from __future__ import annotations

import json

from lantern.ingest.forwarder import FhirForwarder
from lantern.ingest.observations import ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.store import Database
from lantern.store import ingest as repo
from lantern.store.ingest import open_observation_sink

from .conftest import request, serve_http, thing
from .fhir_standin import FhirStandIn

PAYLOAD = json.dumps(
    {"value": 98, "unit": "%", "coding": [{"code": "2708-6", "system": "http://loinc.org"}]}
).encode()


async def test_forwarding_retries_then_delivers_and_gives_up_on_4xx(db: Database) -> None:
    standin = FhirStandIn(fail_next=[503, 429])
    clock = [1000.0]
    async with serve_http(standin.app()) as url:
        forwarder = FhirForwarder(
            db,
            base_url=url + "/fhir",
            token="fwd-secret",
            max_attempts=5,
            retry_seconds=2.0,
            clock=lambda: clock[0],
        )
        writer = GroupCommitWriter(open_observation_sink(db), outbox=True, clock=lambda: clock[0])
        await writer.start()
        service = ObservationService(writer, max_payload_bytes=4096)
        result = await service.handle(request("$aws/rules/FHIRIngest", PAYLOAD, thing("dev1")))
        oid = json.loads(result.replies[0].payload)["observationId"]
        await writer.stop()

        assert await forwarder.run_once() == 0  # 503: retry later
        assert await forwarder.run_once() == 0  # not due yet
        clock[0] += 2.0
        assert await forwarder.run_once() == 0  # 429: retry after 4 s
        clock[0] += 4.0
        assert await forwarder.run_once() == 1
        assert standin.stored[oid]["id"] == oid
        assert standin.auth_seen == ["Bearer fwd-secret"] * 3
        async with db.connect() as conn:
            assert await repo.outbox_states(conn) == {"delivered": 1}

        # a permanent 4xx is given up at once and kept as failed
        standin.fail_next = [422]
        writer = GroupCommitWriter(open_observation_sink(db), outbox=True, clock=lambda: clock[0])
        await writer.start()
        service = ObservationService(writer, max_payload_bytes=4096)
        await service.handle(request("$aws/rules/FHIRIngest", PAYLOAD, thing("dev1")))
        await writer.stop()
        assert await forwarder.run_once() == 0
        async with db.connect() as conn:
            assert await repo.outbox_states(conn) == {"delivered": 1, "failed": 1}
        await forwarder.stop()


async def test_unreachable_server_keeps_entry_pending(db: Database) -> None:
    from support.net import free_port

    clock = [1000.0]
    forwarder = FhirForwarder(
        db,
        base_url=f"http://127.0.0.1:{free_port()}",
        token=None,
        max_attempts=3,
        retry_seconds=1.0,
        clock=lambda: clock[0],
    )
    writer = GroupCommitWriter(open_observation_sink(db), outbox=True, clock=lambda: clock[0])
    await writer.start()
    await ObservationService(writer, max_payload_bytes=4096).handle(
        request("$aws/rules/FHIRIngest", PAYLOAD, thing("dev1"))
    )
    await writer.stop()
    assert await forwarder.run_once() == 0
    async with db.connect() as conn:
        assert await repo.outbox_states(conn) == {"pending": 1}
    clock[0] += 1
    await forwarder.run_once()
    clock[0] += 2
    await forwarder.run_once()
    async with db.connect() as conn:
        assert await repo.outbox_states(conn) == {"failed": 1}
    await forwarder.stop()
