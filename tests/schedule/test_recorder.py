"""The scheduler's results writer on SQLite and PostgreSQL: group commit, and what happens to an
occurrence whose results cannot be committed (nothing reported done that is not)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select, text

from lantern.schedule.payloads import DeliveryJob
from lantern.schedule.recorder import Recorder, ResultNotRecorded
from lantern.store import Database
from lantern.store.schedule_claims import (
    ClaimedOccurrence,
    Completion,
    DeliveryResult,
    OccurrenceClaims,
)
from lantern.store.schema.schedule import schedule_deliveries

from .conftest import FakeDeliverer, Harness, Key, Outcome, at, body

KEY = Key("key_a")
APNS = "apns:" + "ab" * 32
GCM = "gcm:fcm-token:with-colon"
NY = "America/New_York"


async def claim_all(h: Harness) -> list[ClaimedOccurrence]:
    now = h.clock.now()
    plan = h.scheduler().plan
    return await OccurrenceClaims(h.db).claim_due(
        now=now, limit=100, owner="me", lease_until=now + 60, advance=lambda r: plan(r, now)
    )


async def deliveries(db: Database) -> int:
    async with db.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(schedule_deliveries))).scalar_one()
        )


def delivered(claim: ClaimedOccurrence, destination_id: int, at_: float) -> DeliveryResult:
    return DeliveryResult(claim.occurrence_id, destination_id, "delivered", None, "d-1", at_)


async def test_results_of_concurrent_occurrences_share_transactions(harness: Harness) -> None:
    h = harness
    for i in range(20):
        await h.service.create(KEY, body(participant_id=f"U{i}"))
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    claims = await claim_all(h)
    assert len(claims) == 20
    recorder = Recorder(OccurrenceClaims(h.db), asyncio.Lock())
    now = h.clock.now()
    await asyncio.gather(
        *(recorder.record(delivered(c, c.destinations[0][0], now)) for c in claims)
    )
    await asyncio.gather(*(recorder.complete(Completion(c.occurrence_id, now)) for c in claims))
    assert recorder.writer.committed == 40 and recorder.writer.batches < 40
    assert await deliveries(h.db) == 20
    history = await h.service.history(KEY, claims[0].schedule.id)
    assert [o["status"] for o in history] == ["fired"]
    await recorder.close()


async def test_a_batch_that_cannot_commit_fails_every_result_in_it_and_stores_none(
    harness: Harness,
) -> None:
    h = harness
    for i in range(3):
        await h.service.create(KEY, body(participant_id=f"U{i}"))
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    claims = await claim_all(h)
    recorder = Recorder(OccurrenceClaims(h.db), asyncio.Lock())
    now = h.clock.now()
    good = [delivered(c, c.destinations[0][0], now) for c in claims]
    bad = delivered(claims[0], 10_000_000, now)  # no such destination: the batch cannot commit
    outcomes = await asyncio.gather(
        *(recorder.record(r) for r in (*good, bad)),
        recorder.complete(Completion(claims[1].occurrence_id, now)),
        return_exceptions=True,
    )
    assert all(isinstance(o, ResultNotRecorded) for o in outcomes)
    assert recorder.writer.failed_batches == 1
    assert await deliveries(h.db) == 0
    for c in claims:  # nothing reported done: every occurrence is still claimed
        (occurrence,) = await h.service.history(KEY, c.schedule.id)
        assert occurrence["status"] == "claimed"
    # The writer goes on with the next batch.
    await asyncio.gather(*(recorder.record(r) for r in good))
    assert await deliveries(h.db) == 3
    await recorder.close()


@dataclass
class BreakingDeliverer(FakeDeliverer):
    """Hides the results table while sending to ``breaks_on`` (the database "fails")."""

    db: Database | None = None
    breaks_on: str = APNS

    async def __call__(self, job: DeliveryJob) -> Outcome:
        outcome = await super().__call__(job)
        if job.destination == self.breaks_on and self.db is not None:
            await rename(self.db, "schedule_deliveries", "schedule_deliveries_gone")
            self.db = None  # once
        return outcome


async def rename(db: Database, old: str, new: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_an_occurrence_whose_result_cannot_be_recorded_is_retried_after_its_lease(
    harness: Harness,
) -> None:
    h = harness
    view = await h.service.create(KEY, body(destinations=[APNS, GCM]))
    h.clock.set(at(NY, 2025, 1, 6, 9, 0))
    deliverer = BreakingDeliverer(db=h.db)
    first = h.scheduler(deliverer)
    assert await first.run_once() == 1
    # APNS went out, its result could not be stored: the occurrence was left, GCM not sent.
    assert [j.destination for j in deliverer.sent] == [APNS]
    await rename(h.db, "schedule_deliveries_gone", "schedule_deliveries")
    (occurrence,) = await h.service.history(KEY, view["id"])
    assert occurrence["status"] == "claimed" and occurrence["results"] == []
    assert await first.run_once() == 0  # its lease still holds: nobody takes it yet
    h.clock.advance(61)  # lease (60 s) expired, still inside the grace period
    second = h.scheduler(deliverer)
    assert await second.run_once() == 1
    # Sent again to the destination whose result was lost (the documented duplicate), once to
    # the other; now recorded and reported done.
    assert Counter(j.destination for j in deliverer.sent) == {APNS: 2, GCM: 1}
    (occurrence,) = await h.service.history(KEY, view["id"])
    assert occurrence["status"] == "fired"
    assert [r["status"] for r in occurrence["results"]] == ["delivered", "delivered"]
