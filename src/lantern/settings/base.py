"""The base model of every settings section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SectionModel(BaseModel):
    """Base of every settings section: unknown keys are errors, defaults are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
