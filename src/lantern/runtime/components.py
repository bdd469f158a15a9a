"""The composition root: every component of ``lantern serve``, built with what it depends on.

Dependencies are constructor arguments, so the order below is forced by the types: the gateway
first (its hooks go into the MQTT server, its router carries every ``$aws/...`` topic), then the
MQTT server built with those hooks, then the services that register on the router or send
through the push dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass

from lantern.runtime.audit import AuditComponent
from lantern.runtime.awsapi import AwsApiComponent
from lantern.runtime.cluster import ClusterComponent
from lantern.runtime.component import Component, Platform
from lantern.runtime.console import ConsoleComponent
from lantern.runtime.gateway import GatewayComponent
from lantern.runtime.ingest import IngestComponent
from lantern.runtime.jobs import JobsComponent
from lantern.runtime.metrics import GroupCommitCollector
from lantern.runtime.mqtt import MQTTComponent
from lantern.runtime.push import PushComponent
from lantern.runtime.schedule import ScheduleComponent
from lantern.runtime.shadows import ShadowsComponent


@dataclass(frozen=True, slots=True)
class Components:
    gateway: GatewayComponent
    mqtt: MQTTComponent
    push: PushComponent
    schedule: ScheduleComponent
    ingest: IngestComponent
    jobs: JobsComponent
    shadows: ShadowsComponent
    audit: AuditComponent
    console: ConsoleComponent
    awsapi: AwsApiComponent
    cluster: ClusterComponent | None = None

    def start_order(self) -> list[Component]:
        """Started in this order, stopped in reverse: the MQTT listeners open last (every
        device topic has its handler) and close first (nothing new while writers drain)."""
        # A cluster node connects to NATS and registers first (a node that cannot reach NATS
        # stops before anything else starts) and leaves the registry last.
        first = [self.cluster] if self.cluster is not None else []
        return [
            *first,
            self.gateway,
            self.push,
            self.schedule,
            self.ingest,
            self.jobs,
            self.shadows,
            self.audit,
            self.console,
            self.awsapi,
            self.mqtt,
        ]

    def banner_order(self) -> list[Component]:
        """The startup banner: device endpoints first."""
        return [self.mqtt, *self.start_order()[:-1]]


def build_components(platform: Platform) -> Components:
    """Build every component for ``platform``, each with its dependencies."""
    platform.metrics.register(GroupCommitCollector())
    gateway = GatewayComponent(platform)
    mqtt = MQTTComponent(platform, gateway.hooks)
    gateway.attach(mqtt.server)
    push = PushComponent(platform)
    jobs = JobsComponent(platform, gateway.router)
    awsapi = AwsApiComponent(platform, gateway, mqtt.server, jobs)
    return Components(
        gateway=gateway,
        mqtt=mqtt,
        push=push,
        schedule=ScheduleComponent(platform, push.dispatcher, push.keys),
        ingest=IngestComponent(platform, gateway.router),
        jobs=jobs,
        shadows=ShadowsComponent(platform, gateway.router, verifier=awsapi.verifier),
        audit=AuditComponent(platform),
        console=ConsoleComponent(platform, mqtt.server, jobs, push.keys),
        awsapi=awsapi,
        cluster=(
            None
            if platform.cluster is None
            else ClusterComponent(platform, platform.cluster, mqtt.server, mqtt.cluster)
        ),
    )
