"""The MQTT server inside ``lantern serve``.

The server is built with the gateway's hooks (authentication, per-connection authorization, the
reserved-topic router as publish interceptor): there is no moment at which it would admit a
client without them. ``bind()`` binds the listeners right after the HTTP server (a port in use
stops ``serve`` before anything else starts) without accepting; ``start()`` opens them. It is
the last component to start (every ``$aws/...`` handler and writer is ready by then) and the
first to stop (no new messages while the writers drain). ``stop()`` sends DISCONNECT 0x8B to
MQTT 5 clients; on a cluster node with a Server Reference naming another live node's MQTT
address, and the node runs its share of the dead-node session sweeper
(:mod:`lantern.cluster.orphans`, one node of the cluster at a time).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from lantern.cluster.bus import cluster_name
from lantern.cluster.mqtt_node import ClusterMQTT, ClusterMQTTCollector
from lantern.cluster.node import node_id
from lantern.cluster.orphans import OrphanSweeper
from lantern.cluster.registry import list_status
from lantern.cluster.singleton import Singleton
from lantern.mqtt.errors import ListenerBindFailed
from lantern.mqtt.hooks import Authenticator, Authorizer, PublishInterceptor
from lantern.mqtt.server import MQTTServer, MQTTServerConfig
from lantern.runtime.cluster import duty_singleton
from lantern.runtime.component import Component, Platform
from lantern.runtime.metrics import MQTTCollector
from lantern.runtime.ports import PortUnavailable

__all__ = ["MQTTComponent", "ServerHooks"]

log = logging.getLogger("lantern.cluster")


@dataclass(frozen=True, slots=True)
class ServerHooks:
    """What the MQTT server asks the gateway about every client and message."""

    authenticator: Authenticator
    authorizer: Authorizer
    interceptor: PublishInterceptor


class MQTTComponent(Component):
    """The device-facing MQTT listeners (mTLS; optional ALPN, plain TCP, WebSocket)."""

    name = "mqtt"

    def __init__(self, platform: Platform, hooks: ServerHooks) -> None:
        super().__init__(platform)
        s = platform.settings.mqtt
        ca = platform.ca
        self.config = MQTTServerConfig(
            host=s.host,
            tls_port=s.port,
            alpn_port=s.alpn_port,
            tcp_port=s.tcp_port,
            ws_port=s.ws_port,
            cert_file=ca.server_cert_file,
            key_file=ca.server_key_file,
            ca_file=ca.ca_file,
            max_connections=s.max_connections,
            max_packet_size=s.max_packet_size,
            max_inflight=s.max_inflight,
            receive_maximum=s.receive_maximum,
            max_queued_messages=s.max_queued_messages,
            max_session_bytes=s.max_session_bytes,
            max_queued_bytes_total=s.max_queued_bytes_total,
            max_retained_messages=s.max_retained_messages,
            max_retained_bytes=s.max_retained_bytes,
            max_subscriptions_per_connection=s.max_subscriptions_per_connection,
            connect_timeout=s.connect_timeout,
            handshake_timeout=s.handshake_timeout,
            keepalive_max=s.keepalive_max,
            session_expiry_max=s.session_expiry_max,
            topic_alias_maximum=s.topic_alias_maximum,
            log_refusals_per_minute=s.log_refusals_per_minute,
            reuse_port=platform.reuse_port,
        )
        self.server = MQTTServer(
            self.config, hooks.authenticator, hooks.authorizer, hooks.interceptor
        )
        platform.metrics.register(MQTTCollector(self.server))
        # A cluster node (docs/cluster.md): MQTT routed to and from the other nodes over NATS.
        self.cluster: ClusterMQTT | None = None
        self.sweeper: Singleton | None = None
        if platform.settings.cluster.nats_url:
            self.cluster = ClusterMQTT(
                platform.settings.cluster,
                cluster_name(platform.settings.effective_database_url),
                self.server,
                node_id(platform.settings.cluster.node_id, platform.data_dir),
            )
            platform.metrics.register(ClusterMQTTCollector(self.cluster))

    async def bind(self) -> None:
        """Bind every listener (accepting nothing yet): a port in use stops ``serve`` before
        any other component starts."""
        try:
            await self.server.start(serve=False)
        except ListenerBindFailed as exc:
            raise PortUnavailable(exc.listener, exc.host, exc.port, exc.errno) from exc

    async def start(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()
            assert self.cluster.sessions is not None
            sweeper = OrphanSweeper.for_database(self.cluster.sessions, self.platform.db)
            self.sweeper = duty_singleton(self.platform, "session-sweeper", sweeper.run)
            if self.sweeper is not None:
                await self.sweeper.start()
        await self.server.serve()

    async def stop(self) -> None:
        reference = None
        if self.cluster is not None:
            grace = self.platform.settings.cluster.drain_seconds
            if grace > 0:
                # /readyz says draining (the load balancer stops sending), new connections
                # are refused, open ones keep working meanwhile.
                self.server.draining = True
                self.server.set_accepting(False)
                log.info("draining: disconnecting MQTT clients in %g s", grace)
                await asyncio.sleep(grace)
            reference = await self._server_reference()
        await self.server.stop(server_reference=reference)
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.cluster is not None:
            await self.cluster.stop()

    async def _server_reference(self) -> str | None:
        """The MQTT address of another live node (the least loaded) for the Server Reference
        of DISCONNECT 0x8B; None when the registry knows none (or cannot be read)."""
        assert self.cluster is not None
        own_node = self.cluster.node_id
        ports = self.server.ports
        port = ports.get("mqtts", next(iter(ports.values()), self.platform.settings.mqtt.port))
        own_address = f"{self.platform.settings.mqtt.public_host}:{port}"
        try:
            nodes = await list_status(self.platform.db)
        except Exception as exc:
            log.warning("no server reference for the clients (%s)", type(exc).__name__)
            return None
        others = [
            n
            for n in nodes
            if n.state == "up" and n.node_id != own_node and n.mqtt_address != own_address
        ]
        if not others:
            return None
        return min(others, key=lambda n: n.connections).mqtt_address

    def describe(self) -> list[str]:
        host = self.platform.settings.mqtt.public_host
        ports = self.server.ports
        ca_file = self.platform.ca.ca_file
        lines = []
        if self.cluster is not None:
            lines.append(self.cluster.describe())
        if "mqtts" in ports:
            lines.append(
                f"MQTT (mTLS)      mqtts://{host}:{ports['mqtts']}  "
                f"(clients need a certificate signed by {ca_file})"
            )
        if "mqtt-alpn" in ports:
            lines.append(
                f"MQTT (mTLS+ALPN) mqtts://{host}:{ports['mqtt-alpn']}  (ALPN x-amzn-mqtt-ca)"
            )
        if "tcp" in ports:
            lines.append(f"MQTT (plain TCP) mqtt://{host}:{ports['tcp']}  (development only)")
        if "ws" in ports:
            lines.append(f"MQTT (WebSocket) ws://{host}:{ports['ws']}/mqtt  (development only)")
        return lines
