"""The push payload an occurrence sends, per destination scheme (docs/push-api.md shapes).

Shapes follow what the legacy worker sent through the gateway, so phones running the existing
apps display them unchanged. APNs gets a ``collapse-id`` derived from the occurrence: should a
crash make Lantern resend the same occurrence, the phone replaces the first notification instead
of showing two.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One destination of one occurrence: all a deliverer needs (no secret but the token)."""

    occurrence_id: int
    schedule_id: str
    key_id: str
    activity_id: str
    participant_id: str
    title: str
    message: str
    destination: str  # "<scheme>:<address>"
    scheduled_at: int

    @property
    def scheme(self) -> str:
        scheme = self.destination.split(":", 1)[0].lower()
        return "gcm" if scheme == "fcm" else scheme

    @property
    def notification_id(self) -> str:
        return f"{self.schedule_id}-{self.scheduled_at}"


def build_payload(job: DeliveryJob) -> dict[str, Any]:
    """The ``payload`` of a ``/push`` request for ``job``'s destination scheme."""
    page = f"/participant/{job.participant_id}/activity/{job.activity_id}"
    scheme = job.scheme
    if scheme == "apns":
        return {
            "aps": {
                "alert": {"title": job.title, "body": job.message},
                "badge": 0,
                "sound": "default",
                "mutable-content": 1,
                "push-type": "alert",
                "collapse-id": job.notification_id,
            },
            "notificationId": job.notification_id,
            "page": page,
            "activity_id": job.activity_id,
            "actions": [{"name": "Open App", "page": page}],
        }
    if scheme == "gcm":
        return {
            "priority": "high",
            "data": {
                "title": job.title,
                "message": job.message,
                "page": page,
                "activity_id": job.activity_id,
                "notificationId": job.notification_id,
            },
        }
    if scheme == "mailto":
        return {
            "subject": job.title,
            "body": f"<p>{html.escape(job.message)}</p>",
            "text": job.message,
        }
    if scheme == "sms":
        return {"text": f"{job.title}: {job.message}"}
    if scheme == "slack":
        return {"content": f"{job.title}\n{job.message}"}
    raise ValueError(f"no payload shape for scheme {scheme!r}")
