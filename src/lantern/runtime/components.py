"""The components ``lantern serve`` runs, in start order."""

from __future__ import annotations

from lantern.runtime.audit import AuditComponent
from lantern.runtime.component import Component, Platform
from lantern.runtime.gateway import GatewayComponent
from lantern.runtime.ingest import IngestComponent
from lantern.runtime.jobs import JobsComponent
from lantern.runtime.mqtt import MQTTComponent
from lantern.runtime.push import PushComponent
from lantern.runtime.schedule import ScheduleComponent


def build_components(platform: Platform) -> list[Component]:
    """Instantiate every component for ``platform``."""
    classes: list[type[Component]] = [
        MQTTComponent,
        GatewayComponent,
        PushComponent,
        ScheduleComponent,
        IngestComponent,
        JobsComponent,
        AuditComponent,
    ]
    return [cls(platform) for cls in classes]
