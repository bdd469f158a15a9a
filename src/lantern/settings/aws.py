"""Settings of the AWS IoT compatible control plane (ARNs, endpoints)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lantern.settings.base import SectionModel


class AWSSettings(SectionModel):
    """Values Lantern answers with where AWS would name its account or endpoints."""

    account_id: str = Field(
        default="000000000000",
        pattern=r"^[0-9]{12}$",
        description="Account id used in the ARNs Lantern returns (arn:aws:iot:<region>:<id>:…).",
    )
    events: list[Literal["presence", "jobs"]] = Field(
        default_factory=list,
        description=(
            "AWS IoT events Lantern publishes on $aws/events/... (off when empty): "
            '"presence" = $aws/events/presence/connected|disconnected/<clientId>; '
            '"jobs" = $aws/events/job/<jobId>/... and $aws/events/jobExecution/<jobId>/....'
        ),
    )
    events_region: str = Field(
        default="us-east-1",
        pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$",
        description="Region in the ARNs of published events (API answers use the request's).",
    )


__all__ = ["AWSSettings"]
