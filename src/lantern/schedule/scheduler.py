"""The scheduler loop: claim due occurrences, deliver them, record the results.

Guarantees (any number of scheduler processes on one SQLite or PostgreSQL database):

* **Each occurrence is claimed once.** See :mod:`lantern.store.schedule_claims`: due schedules
  are claimed a batch per transaction, each occurrence by inserting its unique
  ``(schedule_id, scheduled_at)`` row; next fire times are computed in Python for the batch.
* **Leases.** A claim is leased for ``claim_lease_seconds`` and renewed every third of that while
  this scheduler works on it (a slow send, a rate-limit wait), so no other scheduler takes it
  over. If a renewal finds the claim taken over (this process stalled past its lease), the
  occurrence's remaining sends here are cancelled: the new owner sends them.
* **No loss across restarts.** A clean stop lets sends already in progress finish (bounded),
  abandons the sends not yet started and hands unfinished claims back at once; a process that
  dies leaves its claims to be taken over when their lease expires. The successor sends only to
  destinations without a recorded result.
* **Duplicates only in the unavoidable window** between a provider accepting a notification and
  its result being committed (results are group-committed, :mod:`lantern.schedule.recorder`;
  each send waits for its result's commit before the occurrence moves on). APNs notifications
  carry a collapse id per occurrence, so even then the phone shows one.
* **Results that cannot be recorded** (the database fails the batch): the occurrence is not
  reported done. It stays claimed, this scheduler drops it and stops renewing its lease, and
  once the lease expires it is taken over (here or elsewhere) and sent to the destinations
  without a recorded result; a send whose result was lost is repeated then.
* **Misfires.** An occurrence found late by at most ``misfire_grace_seconds`` (the process was
  down, or busy) fires; later ones are recorded as ``missed`` and not sent.
* **Rate limits.** Sends go through the deliverer as the owning API key, so they count against
  that key's rate limit like ``/push``. A send refused as ``rate_limited`` is retried after the
  delay the limiter names while the occurrence is still inside the grace period; after that the
  result ``rate_limited`` is recorded.
* A destination whose token the provider reports dead is deactivated and the occurrence's history
  says so; a schedule with no active destination left stops.

Delivery goes through a :class:`Deliver` callable (the push dispatcher in production, a recording
fake in tests). Logs carry schedule and occurrence ids, never titles, messages or tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lantern.schedule.clock import Clock
from lantern.schedule.model import rule_of
from lantern.schedule.payloads import DeliveryJob
from lantern.schedule.recorder import Recorder, ResultNotRecorded
from lantern.schedule.rules import iso_utc
from lantern.settings.schedule import ScheduleSettings
from lantern.stats import Buckets
from lantern.store.schedule import ScheduleRecord, ScheduleStore
from lantern.store.schedule_claims import (
    Advance,
    ClaimedOccurrence,
    Completion,
    DeliveryResult,
    OccurrenceClaims,
)

#: Seconds an occurrence starts firing after its scheduled time.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
log = logging.getLogger("lantern.schedule")


class Outcome(Protocol):
    """What a deliverer reports (``lantern.push.dispatch.DeliveryOutcome`` fits)."""

    @property
    def status(self) -> str: ...  # "delivered", "dead_token", "failed", ...

    @property
    def reason(self) -> str | None: ...

    @property
    def delivery_id(self) -> str | None: ...


class Deliver(Protocol):
    async def __call__(self, job: DeliveryJob) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class TickStats:
    claimed: int
    more_due: bool


class Scheduler:
    """Runs due occurrences of every schedule in the store. See the module docstring."""

    def __init__(
        self,
        store: ScheduleStore,
        deliver: Deliver,
        clock: Clock,
        settings: ScheduleSettings | None = None,
        *,
        instance_id: str | None = None,
    ) -> None:
        self.store = store
        self.claims = OccurrenceClaims(store.db)
        self.deliver = deliver
        self.clock = clock
        self.settings = settings or ScheduleSettings()
        self.instance_id = instance_id or "sched-" + secrets.token_hex(6)
        # One claims transaction at a time from this process (claim, renew, release, record):
        # on a SQLite file they run on the database's one writer thread anyway; on PostgreSQL
        # our own transactions then never wait on each other's row locks.
        self._write_lock = asyncio.Lock()
        self.recorder = Recorder(self.claims, self._write_lock)
        self._wake = asyncio.Event()  # look for due occurrences now
        self._room = asyncio.Event()  # a delivery finished: there may be room for more
        self._stop = asyncio.Event()  # stop() was called: every wait of ours returns
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        # Occurrences sent to the end, waiting only for their last commit (see _room_left).
        self._closing: set[int] = set()
        # Claimed occurrences whose completion is not queued yet, and the task working on each.
        self._open: dict[int, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.lease_renewals = 0  # completed renewal passes (for tests and metrics)
        #: For metrics: occurrences claimed (due, taken over included), fired (sending
        #: started), missed (later than the grace), sends by status, and how late each
        #: occurrence started firing.
        self.due = 0
        self.fired = 0
        self.missed = 0
        self.sends: Counter[str] = Counter()
        self.lateness = Buckets(LATENESS_BUCKETS)
        self.leases_renewed = asyncio.Event()  # set after each renewal pass

    # -- decisions (no I/O) -----------------------------------------------------------------

    def plan(self, record: ScheduleRecord, now: float) -> Advance:
        """Misfire policy for a due schedule: what to fire, what was missed, what comes next."""
        rule = rule_of(record)
        grace = self.settings.misfire_grace_seconds
        limit = self.settings.missed_record_limit
        fire: list[int] = []
        missed: list[tuple[int, str]] = []
        at = record.next_fire_at
        while at is not None and at <= now:
            late = now - at
            if late <= grace:
                fire.append(at)
                at = rule.next_after(at)
                continue
            detail = f"late by {late:.0f} s (grace {grace:.0f} s): skipped"
            if len(missed) < limit:
                missed.append((at, detail))
                at = rule.next_after(at)
            else:  # a long outage: jump ahead instead of listing every miss
                at = rule.next_after(max(at, math.ceil(now - grace) - 1))
                last_at, last_detail = missed[-1]
                missed[-1] = (
                    last_at,
                    f"{last_detail}; later misses until {iso_utc(now - grace)} not listed",
                )
        self.missed += len(missed)
        return Advance(fire, missed, at, "active" if at is not None else "finished")

    # -- one pass -----------------------------------------------------------------------------

    def _ensure_background(self) -> None:
        if self._lease_task is None and not self._stopping:
            self._lease_task = asyncio.create_task(self._keep_leases(), name="schedule-leases")

    def wake(self) -> None:
        """Look for due occurrences now (a schedule was created or resumed)."""
        self._wake.set()

    async def tick(self) -> TickStats:
        """Take over expired claims, claim a batch of due occurrences, start sending them."""
        self._ensure_background()
        now = self.clock.now()
        lease_until = now + self.settings.claim_lease_seconds
        if self._room_left() <= 0:
            return TickStats(0, True)
        async with self._write_lock:
            claimed = await self.claims.reclaim_expired(
                now=now,
                limit=self.settings.batch_size,
                owner=self.instance_id,
                lease_until=lease_until,
            )
        for claim in claimed:
            log.warning(
                "taking over occurrence %s of schedule %s (its scheduler stopped mid-way)",
                claim.occurrence_id,
                claim.schedule.id,
            )
        # Our own claim whose lease lapsed (this process stalled) is still being sent here.
        claimed = [c for c in claimed if c.occurrence_id not in self._open]
        # Claim a whole batch while there is room: a claim is cheap (one transaction per
        # batch), deliveries are bounded by the semaphore, and leases are renewed meanwhile.
        limit = self.settings.batch_size - len(claimed)
        due: list[ClaimedOccurrence] = []
        if limit > 0:
            async with self._write_lock:
                due = await self.claims.claim_due(
                    now=now,
                    limit=limit,
                    owner=self.instance_id,
                    lease_until=lease_until,
                    advance=lambda record: self.plan(record, now),
                )
        self.due += len(claimed) + len(due)
        for claim in (*claimed, *due):
            self._spawn(claim)
        return TickStats(len(claimed) + len(due), limit <= 0 or len(due) >= limit)

    def _room_left(self) -> int:
        """How many more occurrences to take on: ``concurrency`` still sending, and as many
        again waiting for their results' commit (so claiming overlaps committing, and a
        database that falls behind stops the claims: backpressure)."""
        sending = len(self._inflight) - len(self._closing)
        concurrency = self.settings.concurrency
        return min(concurrency - sending, 2 * concurrency - len(self._inflight))

    def _spawn(self, claim: ClaimedOccurrence) -> None:
        task = asyncio.create_task(self._fire(claim), name=f"occurrence-{claim.occurrence_id}")
        self._open[claim.occurrence_id] = task
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("occurrence task failed: %s", type(task.exception()).__name__)

    async def _send(self, job: DeliveryJob) -> tuple[str, str | None, str | None] | None:
        """Deliver one destination: (status, reason, delivery id), or None if stopping first.

        A ``rate_limited`` refusal is retried after the limiter's delay while the occurrence
        stays inside the grace period (outside the concurrency slots: waiting sends nothing).
        """
        while True:
            async with self._slots:
                if self._stopping:
                    return None  # not started: the claim is released for the next scheduler
                try:
                    outcome = await self.deliver(job)
                    status, reason = outcome.status, outcome.reason
                    delivery_id = outcome.delivery_id
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the deliverer's bug must not stop the others
                    return "error", type(exc).__name__, None
            # ``retry_after``: optional on outcomes (the push dispatcher's carries it).
            retry_after = getattr(outcome, "retry_after", None)
            if status != "rate_limited" or not isinstance(retry_after, int | float):
                return status, reason, delivery_id
            late_then = self.clock.now() + retry_after - job.scheduled_at
            if late_then > self.settings.misfire_grace_seconds:
                return status, reason or f"rate limited; retry after {retry_after:.0f} s", None
            await self.clock.wait(max(retry_after, 0.001), self._stop)

    async def _fire(self, claim: ClaimedOccurrence) -> None:
        try:
            await self._fire_claim(claim)
        except ResultNotRecorded:
            # Not reported done: the claim stays and is taken over once its lease expires.
            self._open.pop(claim.occurrence_id, None)
            log.error(
                "occurrence %s of schedule %s: a result could not be recorded; left claimed, "
                "to be taken over when its lease expires",
                claim.occurrence_id,
                claim.schedule.id,
            )

    async def _fire_claim(self, claim: ClaimedOccurrence) -> None:
        record = claim.schedule
        late = self.clock.now() - claim.scheduled_at
        if late > self.settings.misfire_grace_seconds:
            # A taken-over claim can be too late by now: same policy as for a fresh one.
            detail = f"late by {late:.0f} s (grace {self.settings.misfire_grace_seconds:.0f} s)"
            self.missed += 1
            await self._complete(Completion(claim.occurrence_id, self.clock.now(), detail))
            return
        self.fired += 1
        self.lateness.observe(max(late, 0.0))
        last = len(claim.destinations) - 1
        for index, (destination_id, token) in enumerate(claim.destinations):
            job = DeliveryJob(
                occurrence_id=claim.occurrence_id,
                schedule_id=record.id,
                key_id=record.key_id,
                activity_id=record.activity_id,
                participant_id=record.participant_id,
                title=record.title,
                message=record.message,
                destination=token,
                scheduled_at=claim.scheduled_at,
            )
            sent = await self._send(job)
            if sent is None:
                return  # stopping: stays open, handed back by stop()
            status, reason, delivery_id = sent
            self.sends[status] += 1
            if status == "dead_token":
                log.info(
                    "schedule %s: destination %s has a dead token (%s); deactivated",
                    record.id,
                    destination_id,
                    reason,
                )
            result = DeliveryResult(
                claim.occurrence_id,
                destination_id,
                status,
                None if reason is None else str(reason)[:128],
                None if delivery_id is None else str(delivery_id)[:64],
                self.clock.now(),
            )
            if index == last:  # the last result closes the occurrence in the same commit
                await self._complete(Completion(claim.occurrence_id, self.clock.now()), result)
                return
            await self.recorder.record(result)
        await self._complete(Completion(claim.occurrence_id, self.clock.now()))

    async def _complete(self, completion: Completion, result: DeliveryResult | None = None) -> None:
        self._closing.add(completion.occurrence_id)
        try:
            await self.recorder.complete(completion, result)
        finally:
            self._closing.discard(completion.occurrence_id)
        self._open.pop(completion.occurrence_id, None)

    # -- leases -------------------------------------------------------------------------------

    async def renew_leases(self) -> None:
        """Extend the lease of every claim still being worked on; cancel the sends of claims
        another scheduler has taken over meanwhile (it sends them)."""
        ids = sorted(self._open)
        if ids:
            lease_until = self.clock.now() + self.settings.claim_lease_seconds
            async with self._write_lock:
                held = await self.claims.renew(ids, self.instance_id, lease_until)
            for occurrence_id in ids:
                task = self._open.get(occurrence_id)
                if occurrence_id in held or task is None:
                    continue
                log.warning(
                    "occurrence %s was taken over by another scheduler (lease lapsed); "
                    "stopping its sends here",
                    occurrence_id,
                )
                del self._open[occurrence_id]
                task.cancel()
        self.lease_renewals += 1
        self.leases_renewed.set()

    async def _keep_leases(self) -> None:
        interval = self.settings.claim_lease_seconds / 3
        while not self._stopping:
            await self.clock.wait(interval, self._stop)
            if self._stopping:
                return
            try:
                await self.renew_leases()
            except Exception as exc:  # a database hiccup: two more tries before leases lapse
                log.error("renewing schedule claim leases failed: %s", type(exc).__name__)

    # -- running ------------------------------------------------------------------------------

    async def wait_idle(self) -> None:
        """Wait for every occurrence in flight (each returns once its results are committed)."""
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def run_once(self) -> int:
        """Fire everything due now, wait until it is sent and recorded; returns occurrences."""
        total = 0
        while True:
            stats = await self.tick()
            total += stats.claimed
            if not stats.more_due:
                break
            if self._inflight:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        await self.wait_idle()
        return total

    async def _run(self) -> None:
        tick = self.settings.tick_seconds
        while not self._stopping:
            self._wake.clear()  # before looking: a wake() during the tick is not lost
            more = False
            try:
                stats = await self.tick()
                more = stats.more_due
            except Exception as exc:  # a database hiccup: log it, try again next tick
                log.error("scheduler tick failed: %s", type(exc).__name__)
            if self._stopping:
                break
            if more:
                if self._room_left() <= 0:
                    self._room.clear()
                    await self.clock.wait(tick, self._room)  # stop() sets it too
                continue
            wait = tick
            with contextlib.suppress(Exception):
                due = await self.store.next_due()
                if due is not None:
                    wait = min(tick, max(0.0, due - self.clock.now()))
            if wait > 0 and not self._stopping:
                await self.clock.wait(wait, self._wake)  # stop() sets it too

    def start(self) -> None:
        """Run the loop in the background until :meth:`stop`."""
        self._stopping = False
        self._stop.clear()
        self._ensure_background()
        self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    def _signal_stop(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()
        self._room.set()

    async def _end_lease_task(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)
            self._lease_task = None

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop promptly: no more claims; sends already in progress may finish (up to
        ``drain_timeout`` seconds), sends not started yet are abandoned; results are committed
        and every unfinished claim is handed back for another scheduler at once."""
        self._signal_stop()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        await self._end_lease_task()
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.recorder.close()
        await self.claims.release(sorted(self._open), self.instance_id)
        self._open.clear()

    async def abort(self) -> None:
        """Stop at once without draining, recording or releasing: what a killed process leaves
        behind (claims stay until their lease expires). For tests of crash recovery."""
        self.recorder.refuse()
        self._signal_stop()
        tasks: Sequence[asyncio.Task[None]] = [
            t for t in (self._loop_task, self._lease_task, *self._inflight) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lease_task = None
        await self.recorder.abort()
