"""One node's MQTT part of a cluster: routing, retained messages, sessions (docs/cluster.md).

:class:`ClusterMQTT` connects to NATS, joins the MQTT server to the cluster
(:meth:`~lantern.mqtt.server.MQTTServer.join_cluster`) and is started before the MQTT listeners
open and stopped after they close (so wills of the last connections still reach other nodes).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lantern.cluster.bus import Bus
from lantern.cluster.retained import RetainedSync
from lantern.cluster.routing import ClusterRouter
from lantern.cluster.sessions import SessionDirectory
from lantern.errors import ConfigError
from lantern.mqtt.server import MQTTServer
from lantern.settings.cluster import ClusterSettings

__all__ = ["ClusterMQTT", "ClusterMQTTCollector"]

log = logging.getLogger("lantern.cluster")


class ClusterMQTT:
    def __init__(
        self, settings: ClusterSettings, name: str, server: MQTTServer, node_id: str | None = None
    ) -> None:
        """``name``: the cluster's name on NATS (:func:`~lantern.cluster.bus.cluster_name` of
        the database URL)."""
        self.name = name
        self.bus = Bus(settings, self.name)
        # The node's identity (lantern.cluster.node); a random one when none is given (tests).
        self.node_id = node_id or settings.node_id or uuid.uuid4().hex
        # Unique per process run: envelope sequence numbers restart with the process.
        self.origin = f"{self.node_id}-{uuid.uuid4().hex[:8]}"
        self.server = server
        self.router = ClusterRouter(self.bus, server, self.origin)
        self.retained: RetainedSync | None = None
        self.sessions: SessionDirectory | None = None

    async def start(self) -> None:
        """Connect and join; a NATS server that cannot be reached, or has no JetStream, stops
        ``serve`` with a :class:`~lantern.errors.ConfigError` saying what to fix."""
        try:
            await self._start()
        except ConfigError:
            raise
        except Exception as exc:
            await self.router.stop()
            raise ConfigError(
                f"cluster.nats_url: cannot use NATS at {self.bus.settings.nats_url} ({exc!r}); "
                "start a NATS server with JetStream enabled (nats-server -js) there, check its "
                "credentials ([cluster] nats_user/nats_password, nats_token, nats_creds_file, "
                "nats_tls_ca), or unset cluster.nats_url to run a single node"
            ) from exc

    async def _start(self) -> None:
        await self.router.start()
        bucket = f"lantern-{self.name}"
        self.retained = RetainedSync(self.router.shared_client, self.server, f"{bucket}-retained")
        await self.retained.start()
        self.router.retained = self.retained
        self.sessions = SessionDirectory(
            self.router.shared_client,
            self.server,
            self.bus.prefix,
            f"{bucket}-clients",
            self.origin,
        )
        await self.sessions.start()
        self.router.sessions = self.sessions
        self.server.join_cluster(self.router, self.sessions, self.router.routes_settled)
        log.info(
            "cluster %s: node %s routes MQTT over NATS (subjects %s.*)",
            self.name,
            self.node_id,
            self.bus.prefix,
        )

    async def stop(self) -> None:
        if self.sessions is not None:
            await self.sessions.stop()
        if self.retained is not None:
            await self.retained.stop()
        await self.bus.settle(self.router._routes)
        await self.router.stop()

    @property
    def nats_connected(self) -> bool:
        """Whether this node's NATS connections are up (for /readyz)."""
        return self.bus.connected(self.router._routes, self.router._shared)

    def describe(self) -> str:
        return f"cluster          {self.name}, node {self.node_id}, MQTT routed over NATS"


class ClusterMQTTCollector(Collector):
    """``lantern_cluster_*``: messages exchanged with other nodes."""

    def __init__(self, node: ClusterMQTT) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        stats = self.node.router.stats
        for name, doc, value in (
            (
                "messages_in",
                "Messages received from other nodes and routed here.",
                stats.messages_in,
            ),
            ("messages_out", "Messages published to the other nodes.", stats.messages_out),
            (
                "duplicates",
                "Copies from overlapping NATS subscriptions, dropped.",
                stats.duplicates,
            ),
            ("shared_in", "Messages given to a shared subscription group here.", stats.shared_in),
        ):
            yield CounterMetricFamily(f"lantern_cluster_{name}", doc, value=value)
        sessions = self.node.sessions
        if sessions is not None:
            yield CounterMetricFamily(
                "lantern_cluster_sessions_taken_over",
                "Sessions handed to this node by another one.",
                value=sessions.taken_over,
            )
        yield CounterMetricFamily(
            "lantern_cluster_publish_failures",
            "Messages not handed to NATS (disconnected and its buffer full): lost for other nodes.",
            value=self.node.bus.publish_failures,
        )
        yield GaugeMetricFamily(
            "lantern_cluster_nats_connected",
            "1 when this node's NATS connections are up.",
            value=1 if self.node.nats_connected else 0,
        )
        yield GaugeMetricFamily(
            "lantern_cluster_routes",
            "Filters this node subscribes to on NATS.",
            value=len(self.node.router._subs),
        )
