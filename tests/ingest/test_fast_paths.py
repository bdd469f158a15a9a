"""The ingest hot path keeps the reference behaviour: the JSON built from cached fragments is the
validated resource byte for byte, ids are unique time-ordered UUIDs, and the SQLite batch writer
stores a batch whole or not at all."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lantern.ingest.errors import PayloadRejected
from lantern.ingest.observation import (
    build_observation,
    new_observation_id,
    observation_json,
    parse_observation,
)
from lantern.store import Database
from lantern.store.ingest import EngineObservationSink, ObservationRow, open_observation_sink
from lantern.store.sqlite.ingest_process import ProcessObservationWriter
from lantern.store.sqlite.observations import SqliteObservationWriter

RECEIVED = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

PAYLOADS = [
    {"value": "100", "unit": "%", "coding": [{"code": "c", "system": "http://x", "display": "B"}]},
    {
        "value": 72.25,
        "unit": "mm[Hg]",
        "coding": [{"code": "8480-6", "system": "http://loinc.org"}],
    },
    {"value": -3, "unit": 'in "quotes" \\ and ü', "coding": [{"code": "é", "system": "urn:x"}]},
    {
        "value": "1e3",
        "unit": "bpm",
        "patientId": "pat-1.2",
        "coding": [
            {"code": "a", "system": "http://a"},
            {"code": "b", "system": "http://b", "display": "Bé"},
        ],
    },
    {
        "value": 0.1,
        "unit": "x",
        "effectiveDateTime": "2024-02-29T23:59:59.5-05:00",
        "coding": [{"code": "c", "system": "s", "display": ""}],
    },
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_fast_json_equals_the_validated_reference(payload: dict[str, object]) -> None:
    parsed = parse_observation(json.dumps(payload).encode(), max_bytes=4096)
    for thing in ("dev1", "dev:with_underscore"):
        fast = observation_json(parsed, observation_id="id-1", thing_name=thing, received=RECEIVED)
        reference = build_observation(
            parsed, observation_id="id-1", thing_name=thing, received=RECEIVED
        )
        assert fast == json.dumps(reference, separators=(",", ":"))


def test_fast_json_rejects_what_fhir_rejects() -> None:
    # A FHIR code may not hold two spaces in a row: both paths refuse it the same way.
    bad = b'{"value": 1, "unit": "%", "coding": [{"code": "a  b", "system": "http://x"}]}'
    parsed = parse_observation(bad, max_bytes=4096)
    with pytest.raises(PayloadRejected) as fast:
        observation_json(parsed, observation_id="i", thing_name="d", received=RECEIVED)
    with pytest.raises(PayloadRejected) as ref:
        build_observation(parsed, observation_id="i", thing_name="d", received=RECEIVED)
    assert fast.value.message == ref.value.message and fast.value.field == "payload"
    assert "coding" in fast.value.message  # says where


def test_observation_ids_are_unique_time_ordered_uuid7() -> None:
    ids = [new_observation_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    millis = [u.int >> 80 for u in parsed]
    assert millis == sorted(millis)
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert abs(millis[-1] - now_ms) < 60_000


def test_payload_must_be_utf8_json() -> None:
    with pytest.raises(PayloadRejected) as exc:
        parse_observation(b'{"value": "\xff"}', max_bytes=4096)
    assert exc.value.error_code == "InvalidJson"
    with pytest.raises(PayloadRejected) as exc:
        parse_observation(b'{"value": NaN, "unit": "%", "coding": []}', max_bytes=4096)
    assert exc.value.error_code == "InvalidJson"
    bom = b"\xef\xbb\xbf" + json.dumps(PAYLOADS[0]).encode()
    assert parse_observation(bom, max_bytes=4096).unit == "%"


def row(i: int, project: str = "default") -> ObservationRow:
    return ObservationRow(
        id=f"obs-{i}",
        project=project,
        thing_name="dev1",
        patient_id=None,
        effective_at=1.0,
        issued_at=1.0,
        resource='{"resourceType":"Observation"}',
        codes=(("http://a", "a"), ("http://b", "b")),
    )


def counts(path: str) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("observations", "observation_codes", "fhir_outbox")
        )
    finally:
        conn.close()


@pytest.mark.parametrize("kind", [ProcessObservationWriter, SqliteObservationWriter])
async def test_sqlite_writer_stores_a_batch_whole_or_not_at_all(
    sqlite_db: Database, kind: type[ProcessObservationWriter | SqliteObservationWriter]
) -> None:
    path = sqlite_db.sqlite_path
    assert path is not None
    writer = kind(path)
    try:
        await writer.write([row(i) for i in range(3)], outbox=True, now=5.0)
        assert counts(path) == (3, 6, 3)
        # One row of an unknown project: the foreign key fails the whole batch.
        with pytest.raises(sqlite3.IntegrityError):
            await writer.write([row(10), row(11, project="nope")], outbox=False, now=5.0)
        # A duplicate id, too.
        with pytest.raises(sqlite3.IntegrityError):
            await writer.write([row(12), row(0)], outbox=False, now=5.0)
        assert counts(path) == (3, 6, 3)
        await writer.write([row(20)], outbox=False, now=5.0)  # still usable after failures
        assert counts(path) == (4, 8, 3)
    finally:
        await writer.close()


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
_rows = st.lists(
    st.builds(
        ObservationRow,
        id=st.uuids().map(str),
        project=st.just("default"),
        thing_name=_text,
        patient_id=st.none() | _text,
        effective_at=st.floats(allow_nan=False, allow_infinity=False),
        issued_at=st.floats(min_value=0, max_value=4e9),
        resource=_text.map(lambda t: json.dumps({"resourceType": "Observation", "note": t})),
        codes=st.lists(st.tuples(_text, _text), min_size=1, max_size=3).map(tuple),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: r.id,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows, outbox=st.booleans())
async def test_sqlite_writer_stores_every_value_exactly(
    sqlite_db: Database, rows: list[ObservationRow], outbox: bool
) -> None:
    """Batches of any size (split into multi-row statements): floats, text and NULLs come back
    unchanged, every code at its position, outbox rows only when asked for."""
    path = sqlite_db.sqlite_path
    assert path is not None
    writer = SqliteObservationWriter(path)
    conn = sqlite3.connect(path)
    try:
        conn.execute("DELETE FROM fhir_outbox")
        conn.execute("DELETE FROM observation_codes")
        conn.execute("DELETE FROM observations")
        conn.commit()
        await writer.write(rows, outbox=outbox, now=1234.5678)
        stored = conn.execute(
            "SELECT id, project, thing_name, patient_id, effective_at, issued_at, resource "
            "FROM observations"
        ).fetchall()
        assert sorted(stored) == sorted(
            (r.id, r.project, r.thing_name, r.patient_id, r.effective_at, r.issued_at, r.resource)
            for r in rows
        )
        codes = conn.execute(
            "SELECT observation_id, position, project, system, code FROM observation_codes"
        ).fetchall()
        assert sorted(codes) == sorted(
            (r.id, i, r.project, system, code)
            for r in rows
            for i, (system, code) in enumerate(r.codes)
        )
        pending = conn.execute(
            "SELECT observation_id, attempts, next_attempt_at, state FROM fhir_outbox"
        ).fetchall()
        assert sorted(pending) == (
            sorted((r.id, 0, 1234.5678, "pending") for r in rows) if outbox else []
        )
    finally:
        conn.close()
        await writer.close()


async def test_in_memory_database_has_no_sqlite_writer() -> None:
    db = await Database.open("sqlite+aiosqlite:///:memory:")
    try:
        assert db.sqlite_path is None
        assert isinstance(open_observation_sink(db), EngineObservationSink)
    finally:
        await db.close()


def test_effective_time_offset_is_kept() -> None:
    payload = dict(PAYLOADS[0], effectiveDateTime="2024-01-01T08:00:00+02:00")
    parsed = parse_observation(json.dumps(payload).encode(), max_bytes=4096)
    doc = json.loads(
        observation_json(parsed, observation_id="i", thing_name="d", received=RECEIVED)
    )
    assert doc["effectiveDateTime"] == "2024-01-01T08:00:00+02:00"
    assert parsed.effective == datetime(2024, 1, 1, 6, tzinfo=timezone(timedelta(0)))


def decimal_reference(text: str) -> int | float:
    """How string values were converted before (through Decimal)."""
    from decimal import Decimal

    dec = Decimal(text)
    exact = dec == dec.to_integral_value() and "e" not in text.lower()
    return int(dec) if exact else float(dec)


@pytest.mark.parametrize(
    "text",
    ["100", "-7", "0", "-0", "100.00", "12.5", "-0.001", "1e3", "2.50E-2", "123456789012345678.0",
     "999999999999999999", "0.30000000000000004", "1.7976931348623157e308"],
)  # fmt: skip
def test_string_values_convert_as_decimal_did(text: str) -> None:
    body = {"value": text, "unit": "%", "coding": [{"code": "c", "system": "s"}]}
    value = parse_observation(json.dumps(body).encode(), max_bytes=4096).value
    expected = decimal_reference(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", ["1000000000000000000", "-" + "9" * 5000, "1e999", "01", "1.", ""])
def test_bad_or_huge_string_values_are_rejected(text: str) -> None:
    body = {"value": text, "unit": "%", "coding": [{"code": "c", "system": "s"}]}
    with pytest.raises(PayloadRejected) as exc:
        parse_observation(json.dumps(body).encode(), max_bytes=16384)
    assert exc.value.field == "value"


async def test_the_store_picks_the_sink_for_the_database(db: Database) -> None:
    """A SQLite file gets its writer process (default) or thread, two batches in flight; any
    other database the engine (PostgreSQL: two batches at once on connections of their own)."""
    if db.sqlite_path is not None:
        process = open_observation_sink(db)
        thread = open_observation_sink(db, writer="thread")
        assert isinstance(process, ProcessObservationWriter)
        assert isinstance(thread, SqliteObservationWriter)
        assert process.pipeline == thread.pipeline == 2
    else:
        sink = open_observation_sink(db, writer="thread")  # no SQLite writer off SQLite
        assert isinstance(sink, EngineObservationSink)
        assert sink.pipeline == 2
