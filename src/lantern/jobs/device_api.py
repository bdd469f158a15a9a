"""The AWS IoT Jobs device API over MQTT (docs/device-topics.md), as gateway router handlers.

Each handler answers on ``<request topic>/accepted`` or ``/rejected`` to the requesting
connection only, echoing ``clientToken`` at the top level of both, and returns the
``notify``/``notify-next`` messages its change caused as ``to="subscribers"`` replies (after the
accepted reply). A connection may only use its own thing's topics: anything else is refused with
PUBACK 0x87 and no reply (the policy engine refuses it at the gateway too).

Execution changes are compare-and-swap on ``versionNumber`` (see :mod:`lantern.store.jobs`), so
racing updates with the same ``expectedVersion`` get exactly one acceptance and VersionMismatch
for the rest. UpdateJobExecution and StartNextPendingJobExecution, the hot path of a rollout, go
through the group-commit :class:`~lantern.jobs.updates.ExecutionUpdater` (answered after their
batch commits); reads are units of work of the store's :class:`~lantern.store.jobs.JobsUnits`.
Call :meth:`JobsDeviceAPI.close` on shutdown.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lantern.gateway import DeviceRequest, HandlerResult, Reply, ReservedTopicRouter, ThingIdentity
from lantern.jobs import notify, wire
from lantern.jobs.clock import Clock
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.errors import Rejected
from lantern.jobs.events import JobEvents
from lantern.jobs.throttle import TokenBuckets
from lantern.jobs.updates import ExecutionUpdater, not_found
from lantern.mqtt.reason_codes import ReasonCode
from lantern.store import Database
from lantern.store.jobs import (
    TERMINAL,
    ExecStatus,
    ExecutionRecord,
    JobsStore,
    JobStatus,
    JobsUnitOfWork,
    JobsUnits,
)

log = logging.getLogger(__name__)

NEXT = "$next"
_RESPONSE_LEVELS = frozenset({"accepted", "rejected"})
_STREAM_TOPICS = frozenset({"notify", "notify-next"})

Outcome = tuple[dict[str, Any], list[notify.ThingNotice]]
Operation = Callable[[str, Mapping[str, str], dict[str, Any]], Awaitable[Outcome]]


class JobsDeviceAPI:
    """Handlers for ``$aws/things/<thing>/jobs/...``; register them with :meth:`register`."""

    def __init__(
        self,
        db: Database,
        renderer: DocumentRenderer,
        clock: Clock,
        limiter: TokenBuckets | None = None,
        units: JobsUnits | None = None,
    ) -> None:
        self.db = db
        self.renderer = renderer
        self.clock = clock
        self.limiter = limiter
        self.units = units if units is not None else JobsStore(db.transactions)
        self.updates = ExecutionUpdater(self.units, clock)
        #: notify / notify-next messages sent as replies to device requests (for metrics).
        self.notifications: Counter[str] = Counter()
        #: ``$aws/events/jobExecution/...`` publisher; None = off (``aws.events``).
        self.events: JobEvents | None = None

    async def close(self) -> None:
        """Finish the changes in flight (later ones are refused)."""
        await self.updates.close()

    def register(self, router: ReservedTopicRouter) -> None:
        base = "$aws/things/{thing}/jobs"
        router.route(f"{base}/get", self.get_pending)
        router.route(f"{base}/start-next", self.start_next)
        router.route(f"{base}/{{job}}/get", self.describe)
        router.route(f"{base}/{{job}}/update", self.update)
        # Every other topic in the namespace maps to no API: InvalidTopic (more specific
        # routes above were registered first and win).
        router.route(base, self.invalid_topic)
        for depth in range(1, 5):
            levels = "/".join(f"{{l{i}}}" for i in range(depth))
            router.route(f"{base}/{levels}", self.invalid_topic)

    # -- handlers -------------------------------------------------------------------------------
    async def get_pending(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, self._get_pending)

    async def start_next(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, self._start_next)

    async def describe(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, self._describe)

    async def update(self, request: DeviceRequest) -> HandlerResult:
        return await self._serve(request, self._update)

    async def invalid_topic(self, request: DeviceRequest) -> HandlerResult:
        levels = request.topic.split("/")
        if levels[-1] in _RESPONSE_LEVELS or (len(levels) == 5 and levels[4] in _STREAM_TOPICS):
            # A device publishing on a response or notification topic: reserved, no answer
            # (answering would put a /rejected reply on a /rejected topic).
            if not self._authorized(request):
                return HandlerResult(puback=ReasonCode.NOT_AUTHORIZED)
            return HandlerResult(puback=ReasonCode.NO_MATCHING_SUBSCRIBERS)

        async def refuse(_t: str, _p: Mapping[str, str], _b: dict[str, Any]) -> Outcome:
            raise Rejected(wire.INVALID_TOPIC, f"topic {request.topic} maps to no Jobs API")

        return await self._serve(request, refuse)

    # -- plumbing -------------------------------------------------------------------------------
    @staticmethod
    def _authorized(request: DeviceRequest) -> bool:
        identity = request.identity
        return isinstance(
            identity, ThingIdentity
        ) and identity.thing_name == request.topic_params.get("thing")

    async def _serve(self, request: DeviceRequest, operation: Operation) -> HandlerResult:
        if not self._authorized(request):
            log.info(
                "refused jobs request on %s from client %s (not that thing)",
                request.topic,
                request.client_id,
            )
            return HandlerResult(puback=ReasonCode.NOT_AUTHORIZED)
        thing = request.topic_params["thing"]
        token: str | None = None
        try:
            body = wire.parse_body(request.payload)
            raw_token = body.get("clientToken")
            token = raw_token if isinstance(raw_token, str) else None
            wire.client_token(body)
            if self.limiter is not None and not self.limiter.allow(thing):
                raise Rejected(wire.REQUEST_THROTTLED, "too many Jobs requests; retry later")
            accepted, notices = await operation(thing, request.topic_params, body)
        except Rejected as exc:
            return HandlerResult(replies=(self._rejected(request.topic, token, exc),))
        except Exception:
            log.exception("jobs request on %s failed (client %s)", request.topic, request.client_id)
            internal = Rejected(wire.INTERNAL_ERROR, "internal error; retry the request")
            return HandlerResult(replies=(self._rejected(request.topic, token, internal),))
        now = self.clock.now()
        accepted["timestamp"] = wire.seconds(now)
        if token is not None:
            accepted["clientToken"] = token
        replies = [Reply(f"{request.topic}/accepted", wire.encode(accepted))]
        for topic, payload in notify.messages(notices, self.renderer, now):
            replies.append(Reply(topic, payload, to="subscribers"))
            self.notifications[notify.kind(topic)] += 1
        return HandlerResult(replies=tuple(replies))

    def _rejected(self, topic: str, token: str | None, exc: Rejected) -> Reply:
        message: dict[str, Any] = {
            "code": exc.code,
            "message": exc.message,
            "timestamp": wire.seconds(self.clock.now()),
        }
        if token is not None:
            message["clientToken"] = token
        if exc.execution_state is not None:
            message["executionState"] = exc.execution_state
        return Reply(f"{topic}/rejected", wire.encode(message))

    # -- operations -----------------------------------------------------------------------------
    async def _get_pending(
        self, thing: str, _params: Mapping[str, str], _body: dict[str, Any]
    ) -> Outcome:
        pending = await self.units.read(lambda uow: uow.pending_executions(thing))
        return {
            "inProgressJobs": [
                wire.execution_summary(e) for e in pending if e.status is ExecStatus.IN_PROGRESS
            ],
            "queuedJobs": [
                wire.execution_summary(e) for e in pending if e.status is ExecStatus.QUEUED
            ],
        }, []

    async def _start_next(
        self, thing: str, _params: Mapping[str, str], body: dict[str, Any]
    ) -> Outcome:
        applied = await self.updates.start_next(thing, wire.start_next_request(body))
        started = applied.execution
        if started is None:
            return {}, []
        return {
            "execution": wire.execution(started, self.renderer.render(started))
        }, applied.notices

    async def _describe(
        self, thing: str, params: Mapping[str, str], body: dict[str, Any]
    ) -> Outcome:
        job_id = params["job"]
        request = wire.describe_request(body)

        def find(uow: JobsUnitOfWork) -> ExecutionRecord | None:
            if job_id == NEXT:
                pending = uow.pending_executions(thing)
                return pending[0] if pending else None
            return uow.get_execution(job_id, thing) if wire.JOB_ID.match(job_id) else None

        found = await self.units.read(find)
        if found is None and job_id == NEXT:
            return {}, []
        if found is None or found.status is ExecStatus.PLANNED:
            raise not_found(job_id, thing)
        if (
            request.execution_number is not None
            and request.execution_number != found.execution_number
        ):
            raise not_found(job_id, thing)
        if found.status in TERMINAL and found.job_status is not JobStatus.IN_PROGRESS:
            raise Rejected(
                wire.TERMINAL_STATE_REACHED,
                f"job {found.job_id} is {found.job_status.value} and this execution is "
                f"{found.status.value}",
            )
        document = self.renderer.render(found) if request.include_job_document else None
        return {"execution": wire.execution(found, document)}, []

    async def _update(self, thing: str, params: Mapping[str, str], body: dict[str, Any]) -> Outcome:
        job_id = params["job"]
        request = wire.update_request(body)
        if not wire.JOB_ID.match(job_id):
            raise not_found(job_id, thing)
        applied = await self.updates.update(thing, job_id, request)
        assert applied.execution is not None  # an accepted update always has its execution
        execution = applied.execution
        if self.events is not None and execution.status in TERMINAL:  # committed already
            self.events.execution(
                job_id, thing, execution.status, execution.status_details, self.clock.now()
            )
        accepted: dict[str, Any] = {}
        if request.include_job_execution_state:
            accepted["executionState"] = wire.execution_state(applied.execution)
        if request.include_job_document:
            accepted["jobDocument"] = self.renderer.render(applied.execution)
        return accepted, applied.notices
