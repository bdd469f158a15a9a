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
    events: list[Literal["presence"]] = Field(
        default_factory=list,
        description=(
            "AWS IoT events Lantern publishes on $aws/events/... (off when empty): "
            '"presence" = $aws/events/presence/connected|disconnected/<clientId>.'
        ),
    )


__all__ = ["AWSSettings"]
