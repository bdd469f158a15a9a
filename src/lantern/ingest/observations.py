"""The ``$aws/rules/FHIRIngest`` handler: validate, store through group commit, then reply.

Replies go to subscribers of ``<thing>/FHIRIngest/accepted`` / ``…/rejected``
(docs/device-topics.md).
The handler returns only after the commit, and the MQTT server sends the QoS 1 PUBACK after the
handler returns, so a PUBACK means the observation is durable. A bad payload gets PUBACK 0x99
(MQTT 5) and a rejected reply naming the field; nothing is stored.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from lantern.gateway.identity import ThingIdentity
from lantern.gateway.router import DeviceRequest, HandlerResult, Reply
from lantern.ingest.errors import CommitFailed, PayloadRejected
from lantern.ingest.observation import (
    new_observation_id,
    observation_json,
    parse_observation,
    utc_now,
)
from lantern.ingest.writer import GroupCommitWriter
from lantern.mqtt.reason_codes import ReasonCode
from lantern.store.ingest.records import ObservationRow

log = logging.getLogger(__name__)

FHIR_INGEST_TOPIC = "$aws/rules/FHIRIngest"


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def rejected_reply(thing: str, rule: str, status: int, code: str, message: str) -> Reply:
    return Reply(
        topic=f"{thing}/{rule}/rejected",
        payload=_json({"statusCode": status, "errorCode": code, "errorMessage": message}),
        to="subscribers",
    )


class ObservationService:
    """Turns FHIRIngest publishes into stored FHIR Observations."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        *,
        max_payload_bytes: int,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._writer = writer
        self._max_bytes = max_payload_bytes
        self._now = now
        #: Observations stored, and refused by reason (an ``errorCode``, or ``not_a_thing``);
        #: plain counters read by the metrics collector.
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    async def handle(self, request: DeviceRequest) -> HandlerResult:
        """The FHIRIngest handler (register on ``$aws/rules/FHIRIngest``)."""
        identity = request.identity
        if not isinstance(identity, ThingIdentity):
            # Only provisioned things record observations: there is no Device to attach it to.
            self.rejected["not_a_thing"] += 1
            return HandlerResult(puback=ReasonCode.NOT_AUTHORIZED)
        thing = identity.thing_name
        received = self._now()
        try:
            parsed = parse_observation(request.payload, max_bytes=self._max_bytes)
            observation_id = new_observation_id()
            resource = observation_json(
                parsed, observation_id=observation_id, thing_name=thing, received=received
            )
        except PayloadRejected as exc:
            self.rejected[exc.error_code] += 1
            return HandlerResult(
                replies=(rejected_reply(thing, "FHIRIngest", 400, exc.error_code, exc.message),),
                puback=ReasonCode.PAYLOAD_FORMAT_INVALID,
            )
        effective = parsed.effective or received
        row = ObservationRow(
            id=observation_id,
            project=identity.project,
            thing_name=thing,
            patient_id=parsed.patient_id,
            effective_at=effective.timestamp(),
            issued_at=received.timestamp(),
            resource=resource,
            codes=tuple((c.system, c.code) for c in parsed.coding),
        )
        try:
            await self._writer.submit(row)
        except CommitFailed:
            self.rejected["InternalFailure"] += 1
            return HandlerResult(
                replies=(
                    rejected_reply(
                        thing,
                        "FHIRIngest",
                        500,
                        "InternalFailure",
                        "the observation could not be stored; publish it again",
                    ),
                ),
                puback=ReasonCode.UNSPECIFIED_ERROR,
            )
        self.accepted += 1
        # {"observationId", "timestamp"}: the id is a UUID, so no JSON escaping is needed.
        accepted = f'{{"observationId":"{observation_id}","timestamp":{int(received.timestamp())}}}'
        return HandlerResult(
            replies=(Reply(f"{thing}/FHIRIngest/accepted", accepted.encode(), to="subscribers"),)
        )
