"""MQTT control packets as frozen dataclasses, one module per family.

Every packet class has ``encode(protocol_level) -> bytes`` (the whole packet) and the
classmethod ``decode(flags, body, protocol_level)`` (``body`` = the bytes after the fixed
header, as a memoryview). :data:`Packet` is the union of all of them; :data:`PACKET_TYPES`
maps the fixed header packet type (1-15) to its class.
"""

from __future__ import annotations

from typing import TypeAlias

from lantern.mqtt.packets.connect import Auth, Connack, Connect, Disconnect, Will
from lantern.mqtt.packets.ping import Pingreq, Pingresp
from lantern.mqtt.packets.publish import Puback, Pubcomp, Publish, Pubrec, Pubrel
from lantern.mqtt.packets.subscribe import (
    Suback,
    Subscribe,
    SubscriptionRequest,
    Unsuback,
    Unsubscribe,
)

__all__ = [
    "PACKET_TYPES",
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "Packet",
    "Pingreq",
    "Pingresp",
    "Puback",
    "Pubcomp",
    "Publish",
    "Pubrec",
    "Pubrel",
    "Suback",
    "Subscribe",
    "SubscriptionRequest",
    "Unsuback",
    "Unsubscribe",
    "Will",
]

Packet: TypeAlias = (
    Connect
    | Connack
    | Publish
    | Puback
    | Pubrec
    | Pubrel
    | Pubcomp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
)

PACKET_TYPES: dict[int, type[Packet]] = {
    1: Connect,
    2: Connack,
    3: Publish,
    4: Puback,
    5: Pubrec,
    6: Pubrel,
    7: Pubcomp,
    8: Subscribe,
    9: Suback,
    10: Unsubscribe,
    11: Unsuback,
    12: Pingreq,
    13: Pingresp,
    14: Disconnect,
    15: Auth,
}
