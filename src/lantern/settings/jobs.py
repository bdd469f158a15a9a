"""Settings of the jobs service: firmware catalog, deployments and the Jobs device API."""

from __future__ import annotations

from pydantic import Field

from lantern.settings.base import SectionModel


class JobsSettings(SectionModel):
    """Firmware download links, the rollout/timeout timer and device request limits."""

    firmware_url_ttl_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of the signed firmwareUrl minted into each job document sent.",
    )
    timer_tick_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often the timer loop rolls out queued executions, times out "
        "executions, applies abort criteria and publishes notifications.",
    )
    max_firmware_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1, description="Largest firmware image accepted."
    )
    device_requests_per_second: float = Field(
        default=20.0,
        gt=0,
        description="Jobs API requests one thing may make per second (token bucket); beyond "
        "that (and the burst) requests are rejected with RequestThrottled.",
    )
    device_request_burst: int = Field(
        default=40, ge=1, description="Token bucket size for device_requests_per_second."
    )
