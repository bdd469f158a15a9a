"""Settings of the operator web console at ``/console``."""

from __future__ import annotations

from pydantic import Field

from lantern.settings.base import SectionModel


class ConsoleSettings(SectionModel):
    """Whether the console is served and how long a signed-in session lasts."""

    enabled: bool = Field(default=True, description="Serve the operator console at /console.")
    idle_timeout_seconds: int = Field(
        default=1800,
        ge=60,
        le=7 * 24 * 3600,
        description="A console session unused for this long is signed out.",
    )


__all__ = ["ConsoleSettings"]
