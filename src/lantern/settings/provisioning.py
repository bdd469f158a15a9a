"""Settings of the provisioning service."""

from __future__ import annotations

from lantern.settings.base import SectionModel


class ProvisioningSettings(SectionModel):
    """Settings of the provisioning service (filled in by the issue that builds it)."""
