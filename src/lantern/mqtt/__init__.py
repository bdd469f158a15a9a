"""Lantern's MQTT 3.1.1 + 5.0 protocol layer, sans-I/O.

``packets`` (frozen dataclasses), ``codec`` (``encode`` and the bounded incremental
``Decoder``), ``connection`` (``ServerConnection``: per-connection state machine, topic
aliases, flow control), ``topics`` (name/filter validation) and ``errors`` (one exception
tree; every ``ProtocolError`` carries the reason code to answer with). No sockets, no clocks.
"""

from __future__ import annotations

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.connection import ConnectionState, ServerConnection
from lantern.mqtt.errors import LocalProtocolError, MQTTError, ProtocolError
from lantern.mqtt.reason_codes import ReasonCode

__all__ = [
    "ConnectionState",
    "Decoder",
    "LocalProtocolError",
    "MQTTError",
    "ProtocolError",
    "ReasonCode",
    "ServerConnection",
    "encode",
]
