"""The FHIRIngest handler: accepted observations are stored as valid FHIR and acknowledged only
after commit; every bad payload is rejected naming the field, with PUBACK 0x99, storing nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from fhir.resources.R4B.observation import Observation

from lantern.ingest.observations import ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.mqtt.reason_codes import ReasonCode
from lantern.store import Database
from lantern.store.ingest import ObservationRow, get_observation

from .conftest import CLAIM, request, stored_counts, thing

TOPIC = "$aws/rules/FHIRIngest"
SEED = {
    "value": "100",
    "unit": "%",
    "coding": [
        {
            "code": "9750d5e5-d766-4793-a97d-16179578cc4d",
            "system": "http://lifeomic.com/fhir/devices",
            "display": "Battery Percentage",
        }
    ],
    "patientId": "patient-1",
}


async def test_seed_payload_is_stored_as_fhir_observation(
    observation_service: ObservationService, db: Database
) -> None:
    result = await observation_service.handle(
        request(TOPIC, json.dumps(SEED).encode(), thing("dev1"))
    )
    assert result.puback == ReasonCode.SUCCESS
    [reply] = result.replies
    assert reply.topic == "dev1/FHIRIngest/accepted" and reply.to == "subscribers"
    body = json.loads(reply.payload)
    assert isinstance(body["timestamp"], int)
    async with db.connect() as conn:
        stored = await get_observation(conn, body["observationId"], "default")
    assert stored is not None
    obs = Observation.model_validate(stored)
    assert obs.status == "final"
    assert obs.valueQuantity.value == 100 and obs.valueQuantity.unit == "%"
    assert obs.code.coding[0].code == "9750d5e5-d766-4793-a97d-16179578cc4d"
    assert obs.code.text == "Battery Percentage"
    assert obs.subject.reference == "Patient/patient-1"
    assert obs.device.reference == "Device/dev1"
    assert stored["effectiveDateTime"] and stored["issued"]


async def test_without_patient_subject_is_device_and_effective_time_kept(
    observation_service: ObservationService, db: Database
) -> None:
    payload = {
        "value": 72.5,
        "unit": "bpm",
        "coding": [{"code": "8867-4", "system": "http://loinc.org"}],
        "effectiveDateTime": "2024-05-01T12:00:00+02:00",
    }
    result = await observation_service.handle(
        request(TOPIC, json.dumps(payload).encode(), thing("dev2"))
    )
    oid = json.loads(result.replies[0].payload)["observationId"]
    async with db.connect() as conn:
        stored = await get_observation(conn, oid, None)
    assert stored is not None
    assert stored["subject"] == {"reference": "Device/dev2"}
    assert stored["effectiveDateTime"] == "2024-05-01T12:00:00+02:00"
    assert stored["valueQuantity"]["value"] == 72.5
    assert "text" not in stored["code"]


BAD_PAYLOADS = [
    (b"not json", "payload", "InvalidJson"),
    (b"[1, 2]", "payload", "InvalidPayload"),
    (b'"a string"', "payload", "InvalidPayload"),
    (json.dumps({k: v for k, v in SEED.items() if k != "value"}).encode(), "value", "MissingField"),
    (json.dumps({**SEED, "value": "abc"}).encode(), "value", "InvalidPayload"),
    (json.dumps({**SEED, "value": "1e999"}).encode(), "value", "InvalidPayload"),
    (json.dumps({**SEED, "value": True}).encode(), "value", "InvalidPayload"),
    (json.dumps({**SEED, "value": [1]}).encode(), "value", "InvalidPayload"),
    (b'{"value": NaN, "unit": "%", "coding": []}', "payload", "InvalidJson"),
    (json.dumps({k: v for k, v in SEED.items() if k != "unit"}).encode(), "unit", "MissingField"),
    (json.dumps({**SEED, "unit": ""}).encode(), "unit", "InvalidPayload"),
    (json.dumps({**SEED, "unit": "x" * 65}).encode(), "unit", "InvalidPayload"),
    (json.dumps({**SEED, "unit": 5}).encode(), "unit", "InvalidPayload"),
    (
        json.dumps({k: v for k, v in SEED.items() if k != "coding"}).encode(),
        "coding",
        "MissingField",
    ),
    (json.dumps({**SEED, "coding": []}).encode(), "coding", "InvalidPayload"),
    (json.dumps({**SEED, "coding": {"code": "a"}}).encode(), "coding", "InvalidPayload"),
    (json.dumps({**SEED, "coding": ["x"]}).encode(), "coding[0]", "InvalidPayload"),
    (json.dumps({**SEED, "coding": [{"system": "s"}]}).encode(), "coding[0].code", "MissingField"),
    (
        json.dumps({**SEED, "coding": [{"code": "", "system": "s"}]}).encode(),
        "coding[0].code",
        "InvalidPayload",
    ),
    (
        json.dumps({**SEED, "coding": [{"code": "c", "system": 3}]}).encode(),
        "coding[0].system",
        "InvalidPayload",
    ),
    (
        json.dumps({**SEED, "coding": [{"code": "88\u000067-4", "system": "s"}]}).encode(),
        "coding[0].code",
        "InvalidPayload",
    ),
    (
        json.dumps(
            {**SEED, "coding": [SEED["coding"][0], {"code": "c", "system": "s\n"}]}
        ).encode(),
        "coding[1].system",
        "InvalidPayload",
    ),
    (json.dumps({**SEED, "patientId": 12}).encode(), "patientId", "InvalidPayload"),
    (json.dumps({**SEED, "patientId": "a/b"}).encode(), "patientId", "InvalidPayload"),
    (
        json.dumps({**SEED, "effectiveDateTime": "2024-05-01"}).encode(),
        "effectiveDateTime",
        "InvalidPayload",
    ),
    (
        json.dumps({**SEED, "effectiveDateTime": "2024-05-01T12:00:00"}).encode(),
        "effectiveDateTime",
        "InvalidPayload",
    ),
    (
        json.dumps({**SEED, "effectiveDateTime": "2024-13-01T12:00:00Z"}).encode(),
        "effectiveDateTime",
        "InvalidPayload",
    ),
    (
        json.dumps({**SEED, "unit": "%" * 20, "pad": "x" * 5000}).encode(),
        "payload",
        "PayloadTooLarge",
    ),
]


@pytest.mark.parametrize(("payload", "field", "code"), BAD_PAYLOADS)
async def test_bad_payload_rejected_naming_field_and_nothing_stored(
    observation_service: ObservationService,
    db: Database,
    payload: bytes,
    field: str,
    code: str,
) -> None:
    result = await observation_service.handle(request(TOPIC, payload, thing("dev1")))
    assert result.puback == ReasonCode.PAYLOAD_FORMAT_INVALID
    [reply] = result.replies
    assert reply.topic == "dev1/FHIRIngest/rejected"
    body = json.loads(reply.payload)
    assert body["statusCode"] == 400
    assert body["errorCode"] == code
    assert body["errorMessage"].startswith(field)
    assert await stored_counts(db) == (0, 0, 0)


async def test_claim_identity_is_not_authorized(
    observation_service: ObservationService, db: Database
) -> None:
    result = await observation_service.handle(request(TOPIC, json.dumps(SEED).encode(), CLAIM))
    assert result.puback == ReasonCode.NOT_AUTHORIZED
    assert result.replies == ()
    assert await stored_counts(db) == (0, 0, 0)


async def test_many_concurrent_handlers_group_commit_and_resolve_after_commit(
    writer: GroupCommitWriter, observation_service: ObservationService, db: Database
) -> None:
    n = 400
    payload = json.dumps(SEED).encode()
    results = await asyncio.gather(
        *(observation_service.handle(request(TOPIC, payload, thing(f"d{i % 7}"))) for i in range(n))
    )
    assert all(r.puback == ReasonCode.SUCCESS for r in results)
    ids = {json.loads(r.replies[0].payload)["observationId"] for r in results}
    assert len(ids) == n
    assert (await stored_counts(db))[:2] == (n, n)
    assert writer.committed == n
    assert writer.batches < n / 4  # grouped, not one transaction per message
    # Each resolved waiter's row is readable: resolution happened after its commit.
    async with db.connect() as conn:
        for oid in list(ids)[:20]:
            assert await get_observation(conn, oid, "default") is not None


async def test_failed_commit_fails_every_waiter_and_stores_nothing(
    writer: GroupCommitWriter, observation_service: ObservationService, db: Database
) -> None:
    """A batch that cannot commit (one row of an unknown project breaks the foreign key, so the
    transaction fails) fails EVERY publish in it with PUBACK 0x80 and a rejected reply, and
    stores nothing of it, not even the good rows: on SQLite and PostgreSQL alike."""
    payload = json.dumps(SEED).encode()
    good = [request(TOPIC, payload, thing(f"ok{i}")) for i in range(30)]
    bad = request(TOPIC, payload, thing("ghost", project="no-such-project"))
    # All submitted before the writer takes its first batch: one batch, one transaction.
    results = await asyncio.gather(*(observation_service.handle(r) for r in [*good, bad]))
    assert [r.puback for r in results] == [ReasonCode.UNSPECIFIED_ERROR] * len(results)
    for r, sent in zip(results, [*good, bad], strict=True):
        thing_name = sent.identity.thing_name  # type: ignore[union-attr]
        [reply] = r.replies
        assert reply.topic == f"{thing_name}/FHIRIngest/rejected"
        body = json.loads(reply.payload)
        assert body["statusCode"] == 500 and body["errorCode"] == "InternalFailure"
    assert await stored_counts(db) == (0, 0, 0)
    assert writer.committed == 0
    # The writer keeps working after a failed batch.
    ok = await observation_service.handle(request(TOPIC, payload, thing("after")))
    assert ok.puback == ReasonCode.SUCCESS


async def test_the_next_batch_is_handed_over_while_one_commits_in_order_two_at_most(
    writer: GroupCommitWriter, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink gets the next batch while the previous one commits (a SQLite writer starts it
    the moment that COMMIT returns), never more than two, handed over in submission order."""
    sink = writer._sink
    real_write = sink.write
    started: list[list[str]] = []
    in_flight = 0
    most = 0

    async def slow_write(rows: list[ObservationRow], *, outbox: bool, now: float) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        started.append([r.id for r in rows])
        try:
            await asyncio.sleep(0.05)
            await real_write(rows, outbox=outbox, now=now)
        finally:
            in_flight -= 1

    monkeypatch.setattr(sink, "write", slow_write)

    def make(i: int) -> ObservationRow:
        return ObservationRow(
            id=f"pipe-{i:03d}",
            project="default",
            thing_name="d",
            patient_id=None,
            effective_at=float(i),
            issued_at=float(i),
            resource='{"resourceType":"Observation"}',
            codes=(("http://a", "a"),),
        )

    async def trickle() -> None:  # keeps submitting while batches commit
        waits = []
        for i in range(60):
            waits.append(asyncio.ensure_future(writer.submit(make(i))))
            await asyncio.sleep(0.005)
        await asyncio.gather(*waits)

    await trickle()
    assert most == 2
    handed = [oid for batch in started for oid in batch]
    assert handed == sorted(handed)  # batches leave in submission order
    assert (await stored_counts(db))[0] == 60
