"""The cluster component of a node: its NATS connection check, its row in the node registry,
``/readyz`` (database and NATS), and what happens when either is lost (the node says so in the
log and ``/readyz`` and closes new MQTT connections until both are back).

:func:`duty_singleton` wraps a duty that must run on one node at a time (see
:mod:`lantern.cluster.singleton`); on a node that is not clustered it is None and the duty
runs here as on any lone server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from lantern.api.app import ReadinessCheck
from lantern.cluster.health import NatsConnection, NatsProbe, database_problem
from lantern.cluster.mode import ClusterRole
from lantern.cluster.mqtt_node import ClusterMQTT
from lantern.cluster.registry import NodeRegistration
from lantern.cluster.singleton import AdvisoryLock, Duty, DutyLock, FileLock, Singleton
from lantern.mqtt.server import MQTTServer
from lantern.runtime.component import Component, Platform

__all__ = ["ClusterComponent", "duty_singleton"]

log = logging.getLogger("lantern.cluster")
MONITOR_SECONDS = 1.0


def duty_singleton(platform: Platform, name: str, duty: Duty) -> Singleton | None:
    """``duty`` under the cluster-wide lock ``name``; None when this node is alone."""
    if platform.cluster is None:
        return None
    lock: DutyLock
    if platform.db.is_sqlite:
        lock = FileLock(platform.data_dir / "locks" / f"{name}.lock")
    else:
        lock = AdvisoryLock(platform.db.engine, name)
    return Singleton(name, lock, duty)


class ClusterComponent(Component):
    """This node's membership: see the module docstring."""

    name = "cluster"

    def __init__(
        self,
        platform: Platform,
        role: ClusterRole,
        mqtt: MQTTServer,
        routing: ClusterMQTT | None = None,
    ) -> None:
        super().__init__(platform)
        self.role = role
        self.mqtt = mqtt
        self.routing = routing  # MQTT routing's own NATS connections, checked too
        self.nats: NatsProbe = NatsConnection(platform.settings.cluster, f"lantern-{role.node_id}")
        self.registration: NodeRegistration | None = None
        self.problems: dict[str, str] = {}
        self._monitor: asyncio.Task[None] | None = None

    def readiness_checks(self) -> Sequence[ReadinessCheck]:
        return [self.check]

    async def check(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        db = await database_problem(self.platform.db)
        if db is not None:
            problems["database"] = db
        nats = await self.nats.problem()
        if nats is None and self.routing is not None and not self.routing.nats_connected:
            nats = "MQTT routing's NATS connection is down (reconnecting)"
        if nats is not None:
            problems["nats"] = nats
        if self.mqtt.draining:
            problems["draining"] = "the node is shutting down (its MQTT clients move elsewhere)"
        return problems

    def _connections(self) -> int:
        return len(self.mqtt.handlers)

    async def start(self) -> None:
        if isinstance(self.nats, NatsConnection):
            await self.nats.connect()
        settings = self.platform.settings
        ports = self.mqtt.ports
        port = ports.get("mqtts", next(iter(ports.values()), settings.mqtt.port))
        self.registration = NodeRegistration(
            self.platform.db,
            self.role.node_id,
            mqtt_address=f"{settings.mqtt.public_host}:{port}",
            http_address=self.platform.http_base_url,
            connections=self._connections,
        )
        await self.registration.start()
        self._monitor = asyncio.create_task(self._watch(), name="cluster-health")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_SECONDS)
            try:
                problems = await self.check()
            except Exception as exc:  # a check must not end the watch
                problems = {"check": type(exc).__name__}
            if problems and not self.problems and set(problems) == {"draining"}:
                log.info("node %s draining: not accepting new MQTT connections", self.role.node_id)
            elif problems and not self.problems:
                log.error(
                    "node %s not ready: %s; not accepting new MQTT connections until it recovers",
                    self.role.node_id,
                    "; ".join(f"{k}: {v}" for k, v in sorted(problems.items())),
                )
                self.mqtt.set_accepting(False)
            elif self.problems and not problems:
                log.info("node %s ready again: accepting MQTT connections", self.role.node_id)
                self.mqtt.set_accepting(True)
            self.problems = problems

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        if self.registration is not None:
            await self.registration.stop()
        if isinstance(self.nats, NatsConnection):
            await self.nats.close()

    def describe(self) -> list[str]:
        where = "one machine, embedded NATS" if self.role.one_machine else "PostgreSQL + NATS"
        return [f"cluster node     {self.role.node_id}  ({where}: {self.role.nats_url})"]
