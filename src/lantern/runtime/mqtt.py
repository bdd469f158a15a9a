"""The MQTT server inside ``lantern serve``.

The constructor builds :class:`MQTTServer` from the ``mqtt`` settings and the platform CA and
publishes it as ``Platform.extras["mqtt.server"]`` (other components may look it up before
anything starts). ``start()`` adopts the gateway's hooks when a gateway component published them
(``extras["gateway.authenticator"]``, ``["gateway.authorizer"]``, ``["gateway.interceptor"]``),
then binds the listeners. Without a gateway it uses :class:`AllowAllAuthenticator` /
:class:`AllowAllAuthorizer` — TEMPORARY: any client certificate signed by the platform CA
connects with full access. ``stop()`` sends DISCONNECT 0x8B to MQTT 5 clients.
"""

from __future__ import annotations

import logging
from typing import cast

from lantern.mqtt.hooks import (
    AllowAllAuthenticator,
    AllowAllAuthorizer,
    Authenticator,
    Authorizer,
    PublishInterceptor,
)
from lantern.mqtt.server import MQTTServer, MQTTServerConfig
from lantern.runtime.component import Component, Platform
from lantern.runtime.metrics import MQTTCollector

__all__ = ["MQTTComponent"]

log = logging.getLogger(__name__)


class MQTTComponent(Component):
    """The device-facing MQTT listeners (mTLS; optional ALPN, plain TCP, WebSocket)."""

    name = "mqtt"

    def __init__(self, platform: Platform) -> None:
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
        )
        self.server = MQTTServer(self.config, AllowAllAuthenticator(), AllowAllAuthorizer())
        platform.metrics.register(MQTTCollector(self.server))
        self.allow_all = True
        platform.extras["mqtt.server"] = self.server

    async def start(self) -> None:
        extras = self.platform.extras
        authenticator = extras.get("gateway.authenticator")
        authorizer = extras.get("gateway.authorizer")
        interceptor = extras.get("gateway.interceptor")
        if authenticator is not None and authorizer is not None:
            self.server.use_hooks(
                _as_authenticator(authenticator),
                _as_authorizer(authorizer),
                _as_interceptor(interceptor) if interceptor is not None else None,
            )
            self.allow_all = False
        else:
            log.warning(
                "MQTT: no gateway plugged in; any certificate signed by the platform CA "
                "connects with full access (temporary)"
            )
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def describe(self) -> list[str]:
        host = self.platform.settings.mqtt.public_host
        ports = self.server.ports
        ca_file = self.platform.ca.ca_file
        lines = []
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
        if self.allow_all:
            lines.append(
                "MQTT access      any CA-signed client certificate has full access (temporary); "
                "try: lantern dev client-cert --name dev1 --out ./dev1"
            )
        return lines


def _as_authenticator(obj: object) -> Authenticator:
    if not hasattr(obj, "authenticate"):
        raise TypeError(f"extras['gateway.authenticator'] is not an Authenticator: {obj!r}")
    return cast(Authenticator, obj)


def _as_authorizer(obj: object) -> Authorizer:
    if not all(hasattr(obj, m) for m in ("may_publish", "may_subscribe", "may_receive")):
        raise TypeError(f"extras['gateway.authorizer'] is not an Authorizer: {obj!r}")
    return cast(Authorizer, obj)


def _as_interceptor(obj: object) -> PublishInterceptor:
    if not hasattr(obj, "intercept"):
        raise TypeError(f"extras['gateway.interceptor'] is not a PublishInterceptor: {obj!r}")
    return cast(PublishInterceptor, obj)
