"""Settings of the AWS IoT compatible control plane (ARNs, endpoints)."""

from __future__ import annotations

from pydantic import Field

from lantern.settings.base import SectionModel


class AWSSettings(SectionModel):
    """Values Lantern answers with where AWS would name its account or endpoints."""

    account_id: str = Field(
        default="000000000000",
        pattern=r"^[0-9]{12}$",
        description="Account id used in the ARNs Lantern returns (arn:aws:iot:<region>:<id>:…).",
    )


__all__ = ["AWSSettings"]
