"""The asyncio MQTT server: per-connection handlers over the transports, the broker core, hooks.

See :class:`MQTTServer` and :class:`MQTTServerConfig`.
"""

from __future__ import annotations

from lantern.mqtt.server.config import MQTTServerConfig
from lantern.mqtt.server.handler import ConnectionHandler
from lantern.mqtt.server.server import MQTTServer

__all__ = ["ConnectionHandler", "MQTTServer", "MQTTServerConfig"]
