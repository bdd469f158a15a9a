"""AWS IoT jobs events: ``$aws/events/job/<jobId>/<operation>`` and
``$aws/events/jobExecution/<jobId>/<operation>`` (docs/aws-control-plane.md, "Events").

Built by the runtime only when ``aws.events`` contains ``"jobs"`` and handed to the device API
and the timer, which call it after the change they report has committed. Publishing goes through
a :class:`~lantern.gateway.Notifier` (the MQTT server's publish): best effort, as AWS's.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from lantern.gateway import Notifier
from lantern.store.jobs import ExecStatus, JobRecord

__all__ = ["EXECUTION_OPERATIONS", "JobEvents"]

log = logging.getLogger(__name__)

#: Execution statuses that produce a jobExecution event, and the event's operation.
EXECUTION_OPERATIONS: dict[ExecStatus, str] = {
    ExecStatus.SUCCEEDED: "succeeded",
    ExecStatus.FAILED: "failed",
    ExecStatus.REJECTED: "rejected",
    ExecStatus.CANCELED: "canceled",
    ExecStatus.TIMED_OUT: "timed_out",
    ExecStatus.REMOVED: "removed",
}

_COUNTED = {
    ExecStatus.CANCELED: "numberOfCanceledThings",
    ExecStatus.REJECTED: "numberOfRejectedThings",
    ExecStatus.FAILED: "numberOfFailedThings",
    ExecStatus.REMOVED: "numberOfRemovedThings",
    ExecStatus.SUCCEEDED: "numberOfSucceededThings",
    ExecStatus.TIMED_OUT: "numberOfTimedOutThings",
}


class JobEvents:
    """Builds and publishes the jobs events of one server."""

    def __init__(self, notifier: Notifier, account_id: str, region: str) -> None:
        self._notifier = notifier
        self._arn = f"arn:aws:iot:{region}:{account_id}"

    def execution(
        self,
        job_id: str,
        thing_name: str,
        status: ExecStatus,
        status_details: dict[str, str],
        now: float,
        operation: str | None = None,
    ) -> None:
        """An execution reached ``status`` (nothing for statuses without an event), or
        ``operation`` (``deleted``) happened to it in that status."""
        operation = operation or EXECUTION_OPERATIONS.get(status)
        if operation is None:
            return
        payload: dict[str, Any] = {
            "eventType": "JOB_EXECUTION",
            "eventId": str(uuid.uuid4()),
            "timestamp": int(now),
            "operation": operation,
            "jobId": job_id,
            "thingArn": f"{self._arn}:thing/{thing_name}",
            "status": status.value,
        }
        if status_details:
            payload["statusDetails"] = status_details
        self._publish(f"$aws/events/jobExecution/{job_id}/{operation}", payload)

    def job(
        self,
        job: JobRecord,
        operation: str,
        counts: dict[ExecStatus, int] | None,
        now: float,
        status: str | None = None,
    ) -> None:
        """``job`` was ``completed``, ``canceled`` (its record as stored after the change) or
        ``deleted`` (as it was; ``status`` DELETED, no counts)."""
        targets = job.targets or {}
        payload: dict[str, Any] = {
            "eventType": "JOB",
            "eventId": str(uuid.uuid4()),
            "timestamp": int(now),
            "operation": operation,
            "jobId": job.job_id,
            "status": status or job.status.value,
            "targetSelection": "CONTINUOUS" if job.continuous else "SNAPSHOT",
            "targets": [
                *(f"{self._arn}:thing/{name}" for name in targets.get("things", [])),
                *(f"{self._arn}:thinggroup/{name}" for name in targets.get("groups", [])),
            ],
            "createdAt": int(job.created_at * 1000),
            "lastUpdatedAt": int(job.updated_at * 1000),
        }
        if counts is not None:
            payload["jobProcessDetails"] = {
                name: counts.get(state, 0) for state, name in _COUNTED.items()
            }
        if job.description:
            payload["description"] = job.description
        if job.completed_at is not None:
            payload["completedAt"] = int(job.completed_at * 1000)
        self._publish(f"$aws/events/job/{job.job_id}/{operation}", payload)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            self._notifier.publish(topic, json.dumps(payload).encode(), qos=1)
        except Exception:
            log.exception("could not publish %s", topic)
