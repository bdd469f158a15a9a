"""Byte transports for the MQTT server: plain TCP, TLS (memory-lean) and WebSocket listeners.

See :mod:`lantern.mqtt.transport.base` for the interfaces the MQTT connection handler uses.
"""

from __future__ import annotations

from lantern.mqtt.transport.base import (
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    ByteStream,
    Listener,
    ReceiverFactory,
    StreamReceiver,
)
from lantern.mqtt.transport.ssl_context import DEFAULT_ALPN, make_server_ssl_context
from lantern.mqtt.transport.tcp import start_tcp_listener
from lantern.mqtt.transport.tls import start_tls_listener
from lantern.mqtt.transport.websocket import start_ws_listener

__all__ = [
    "DEFAULT_ALPN",
    "WRITE_HIGH_WATER",
    "WRITE_LOW_WATER",
    "ByteStream",
    "Listener",
    "ReceiverFactory",
    "StreamReceiver",
    "make_server_ssl_context",
    "start_tcp_listener",
    "start_tls_listener",
    "start_ws_listener",
]
