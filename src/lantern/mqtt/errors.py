"""Exceptions of the MQTT layer.

Tree::

    LanternError
    └── MQTTError                      root of lantern.mqtt
        ├── ProtocolError              the peer did wrong; ``reason_code`` is what to send back
        │   ├── MalformedPacket            0x81 (bytes that cannot be parsed)
        │   ├── ProtocolViolation          0x82 (parsable, but breaks a rule)
        │   ├── UnsupportedProtocolVersion 0x84 (``protocol_level`` is what the client asked for)
        │   ├── TopicFilterInvalid         0x8F
        │   ├── TopicNameInvalid           0x90
        │   ├── ReceiveMaximumExceeded     0x93
        │   ├── TopicAliasInvalid          0x94
        │   └── PacketTooLarge             0x95
        ├── LocalProtocolError         we were asked to send something invalid (a bug on our side)
        └── ListenerBindFailed         a listener's address cannot be bound (e.g. port in use)

Every ``ProtocolError`` carries the MQTT 5 reason code that the server should put in its
CONNACK or DISCONNECT (MQTT 3.1.1 peers just get the connection closed). Messages cite the spec
clause, e.g. ``"[MQTT-3.1.2-3] ..."``.
"""

from __future__ import annotations

from lantern.errors import LanternError
from lantern.mqtt.reason_codes import ReasonCode

__all__ = [
    "ListenerBindFailed",
    "LocalProtocolError",
    "MQTTError",
    "MalformedPacket",
    "PacketTooLarge",
    "ProtocolError",
    "ProtocolViolation",
    "ReceiveMaximumExceeded",
    "TopicAliasInvalid",
    "TopicFilterInvalid",
    "TopicNameInvalid",
    "UnsupportedProtocolVersion",
]


class MQTTError(LanternError):
    """Root of every exception raised by ``lantern.mqtt``."""


class ListenerBindFailed(MQTTError):
    """Listener ``listener`` could not bind ``host:port``; ``errno`` says why (the cause is
    chained)."""

    def __init__(self, listener: str, host: str, port: int, errno: int | None, why: str) -> None:
        super().__init__(f"the {listener} listener cannot bind {host}:{port}: {why}")
        self.listener, self.host, self.port, self.errno = listener, host, port, errno


class ProtocolError(MQTTError):
    """The peer broke the protocol; ``reason_code`` is the MQTT 5 code to answer with.

    Subclasses fix the default code; ``reason_code=`` overrides it for the rarer codes
    (e.g. QoS not supported) that have no subclass of their own.
    """

    default_reason_code: ReasonCode = ReasonCode.UNSPECIFIED_ERROR

    def __init__(self, message: str, *, reason_code: ReasonCode | None = None) -> None:
        super().__init__(message)
        self.reason_code: ReasonCode = (
            self.default_reason_code if reason_code is None else reason_code
        )


class MalformedPacket(ProtocolError):
    """The bytes do not form a valid packet (0x81)."""

    default_reason_code = ReasonCode.MALFORMED_PACKET


class ProtocolViolation(ProtocolError):
    """A well-formed packet that breaks a protocol rule (0x82)."""

    default_reason_code = ReasonCode.PROTOCOL_ERROR


class PacketTooLarge(ProtocolError):
    """The fixed header announces a packet above our maximum packet size (0x95)."""

    default_reason_code = ReasonCode.PACKET_TOO_LARGE


class UnsupportedProtocolVersion(ProtocolError):
    """CONNECT asked for a protocol level other than 4 (3.1.1) or 5 (5.0) (0x84).

    ``protocol_level`` lets the server choose the CONNACK encoding: MQTT 5 (reason code 0x84)
    for levels above 5, MQTT 3.1.1 (return code 1) otherwise.
    """

    default_reason_code = ReasonCode.UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, message: str, protocol_level: int) -> None:
        super().__init__(message)
        self.protocol_level = protocol_level


class TopicAliasInvalid(ProtocolError):
    """Topic alias 0 or above the advertised Topic Alias Maximum (0x94)."""

    default_reason_code = ReasonCode.TOPIC_ALIAS_INVALID


class ReceiveMaximumExceeded(ProtocolError):
    """More unacknowledged QoS 1/2 PUBLISH packets than our Receive Maximum (0x93)."""

    default_reason_code = ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


class TopicNameInvalid(ProtocolError):
    """A PUBLISH topic name that is empty or contains a wildcard (0x90)."""

    default_reason_code = ReasonCode.TOPIC_NAME_INVALID


class TopicFilterInvalid(ProtocolError):
    """A topic filter that is empty or misuses wildcards / ``$share`` (0x8F)."""

    default_reason_code = ReasonCode.TOPIC_FILTER_INVALID


class LocalProtocolError(MQTTError):
    """We were asked to encode or send something the protocol forbids (a bug on our side)."""
