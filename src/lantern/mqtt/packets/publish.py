"""PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (MQTT 5.0 §3.3-3.7).

PUBLISH is the hot path: encoding joins precomputed parts once, decoding slices the
memoryview once for the payload. Delivery state (inflight, retries) is not kept here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from lantern.mqtt.errors import LocalProtocolError, MalformedPacket, ProtocolViolation
from lantern.mqtt.primitives import (
    MQTT5,
    U16,
    check_flags,
    decode_packet_id,
    decode_reason_code,
    decode_utf8,
    encode_packet_id,
    encode_utf8,
    expect_end,
    fixed_header,
)
from lantern.mqtt.properties import (
    EMPTY_PROPERTIES,
    PUBACK_PROPS,
    PUBLISH_PROPS,
    Properties,
    decode_properties,
    encode_properties,
)
from lantern.mqtt.reason_codes import PUBACK_CODES, PUBREL_CODES, ReasonCode
from lantern.mqtt.topics import validate_topic_name

__all__ = ["Puback", "Pubcomp", "Publish", "Pubrec", "Pubrel", "encode_publish"]

_EMPTY = b""
_EMPTY_TOPIC = b"\x00\x00"
_ALIAS_PREFIX = b"\x23"
_ACK = struct.Struct("!BBH")
_ACK_RC = struct.Struct("!BBHB")
_PID_RC = struct.Struct("!HB")


# PUBLISH and PUBACK are created for every message: not ``frozen`` (a frozen dataclass's
# __init__ costs about 4x a plain one), but hashable and to be treated as immutable all the same.
@dataclass(slots=True, unsafe_hash=True)
class Publish:
    """PUBLISH. ``packet_id`` is set iff ``qos > 0``. ``topic`` may be "" on MQTT 5 when
    ``properties.topic_alias`` names a topic already set on this connection.

    ``raw``: the packet exactly as received, set by the decoder (None otherwise, and on any
    copy made with ``dataclasses.replace``); lets the server forward it without re-encoding."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = EMPTY_PROPERTIES
    raw: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def encode(self, protocol_level: int) -> bytes:
        """Encode for ``protocol_level``; at level 4 properties are dropped."""
        return encode_publish(self, protocol_level)

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a PUBLISH body; the topic is checked unless it is empty with an alias."""
        qos = (flags >> 1) & 3
        if qos == 3:
            raise MalformedPacket("[MQTT-3.3.1-4] PUBLISH QoS must not be 3")
        dup = bool(flags & 8)
        topic, pos = decode_utf8(body, 0)
        packet_id = None
        if qos:
            packet_id, pos = decode_packet_id(body, pos, "PUBLISH")
        elif dup:
            raise MalformedPacket("[MQTT-3.3.1-2] DUP must be 0 on a QoS 0 PUBLISH")
        props = EMPTY_PROPERTIES
        if protocol_level == MQTT5:
            props, pos = decode_properties(body, pos, PUBLISH_PROPS, "PUBLISH")
            if props is not EMPTY_PROPERTIES and props.response_topic is not None:
                validate_topic_name(props.response_topic)
        if topic:
            if "+" in topic or "#" in topic:
                validate_topic_name(topic)
        elif protocol_level != MQTT5:
            validate_topic_name(topic)
        elif props.topic_alias is None:
            raise ProtocolViolation("[MQTT-3.3.2.3.4] empty topic name without a topic alias")
        return cls(topic, bytes(body[pos:]), qos, bool(flags & 1), dup, packet_id, props)


def encode_publish(
    packet: Publish, protocol_level: int, topic_alias: int = 0, omit_topic: bool = False
) -> bytes:
    """Encode ``packet``; with ``topic_alias`` (MQTT 5) add that Topic Alias property, and with
    ``omit_topic`` send an empty topic name, without copying the packet or its properties."""
    qos = packet.qos
    topic = _EMPTY_TOPIC if omit_topic else encode_utf8(packet.topic)
    if qos:
        if qos > 2 or qos < 0:
            raise LocalProtocolError(f"[MQTT-3.3.1-4] QoS {qos} is not 0, 1 or 2")
        pid = encode_packet_id(packet.packet_id)
    elif packet.dup:
        raise LocalProtocolError("[MQTT-3.3.1-2] DUP must be 0 on a QoS 0 PUBLISH")
    else:
        pid = _EMPTY
    if protocol_level == MQTT5:
        if topic_alias:
            props = encode_properties(packet.properties, _ALIAS_PREFIX + U16.pack(topic_alias))
        else:
            props = encode_properties(packet.properties)
    else:
        props = _EMPTY
    payload = packet.payload
    first = 0x30 | qos << 1
    if packet.retain:
        first |= 1
    if packet.dup:
        first |= 8
    return b"".join(
        (
            fixed_header(first, len(topic) + len(pid) + len(props) + len(payload)),
            topic,
            pid,
            props,
            payload,
        )
    )


def _encode_ack(
    first: int,
    packet_id: int,
    rc: ReasonCode,
    props: Properties,
    protocol_level: int,
    allowed: frozenset[ReasonCode],
) -> bytes:
    if not 0 < packet_id <= 0xFFFF:
        raise LocalProtocolError(f"[MQTT-2.2.1-3] packet identifier {packet_id} not in 1..65535")
    if protocol_level != MQTT5:
        return _ACK.pack(first, 2, packet_id)
    if rc not in allowed:
        raise LocalProtocolError(f"[MQTT-2.4] {rc!r} is not valid on packet type {first >> 4}")
    encoded = encode_properties(props)
    if encoded == b"\x00":
        return _ACK.pack(first, 2, packet_id) if rc == 0 else _ACK_RC.pack(first, 3, packet_id, rc)
    return fixed_header(first, 3 + len(encoded)) + _PID_RC.pack(packet_id, rc) + encoded


def _decode_ack(
    body: memoryview,
    protocol_level: int,
    allowed: frozenset[ReasonCode],
    name: str,
) -> tuple[int, ReasonCode, Properties]:
    packet_id, pos = decode_packet_id(body, 0, name)
    rc = ReasonCode.SUCCESS
    props = EMPTY_PROPERTIES
    if protocol_level == MQTT5 and pos < len(body):
        rc, pos = decode_reason_code(body, pos, allowed, name)
        if pos < len(body):
            props, pos = decode_properties(body, pos, PUBACK_PROPS, name)
    expect_end(body, pos, name)
    return packet_id, rc, props


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see Publish
class Puback:
    """PUBACK: QoS 1 acknowledgement."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; 3.1.1 drops the reason code and properties."""
        return _encode_ack(
            0x40, self.packet_id, self.reason_code, self.properties, protocol_level, PUBACK_CODES
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a PUBACK body."""
        if len(body) == 2 and not flags and (body[0] or body[1]):
            return cls(body[0] << 8 | body[1])  # the usual success, decoded inline
        check_flags(flags, 0, "PUBACK")
        return cls(*_decode_ack(body, protocol_level, PUBACK_CODES, "PUBACK"))


@dataclass(frozen=True, slots=True)
class Pubrec:
    """PUBREC: QoS 2 delivery part 1."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; 3.1.1 drops the reason code and properties."""
        return _encode_ack(
            0x50, self.packet_id, self.reason_code, self.properties, protocol_level, PUBACK_CODES
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a PUBREC body."""
        check_flags(flags, 0, "PUBREC")
        return cls(*_decode_ack(body, protocol_level, PUBACK_CODES, "PUBREC"))


@dataclass(frozen=True, slots=True)
class Pubrel:
    """PUBREL: QoS 2 delivery part 2 (fixed header flags 0b0010)."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; 3.1.1 drops the reason code and properties."""
        return _encode_ack(
            0x62, self.packet_id, self.reason_code, self.properties, protocol_level, PUBREL_CODES
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a PUBREL body ([MQTT-3.6.1-1]: flags must be 0b0010)."""
        check_flags(flags, 2, "PUBREL")
        return cls(*_decode_ack(body, protocol_level, PUBREL_CODES, "PUBREL"))


@dataclass(frozen=True, slots=True)
class Pubcomp:
    """PUBCOMP: QoS 2 delivery part 3."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; 3.1.1 drops the reason code and properties."""
        return _encode_ack(
            0x70, self.packet_id, self.reason_code, self.properties, protocol_level, PUBREL_CODES
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a PUBCOMP body."""
        if len(body) == 2 and not flags and (body[0] or body[1]):
            return cls(body[0] << 8 | body[1])  # the usual success, decoded inline
        check_flags(flags, 0, "PUBCOMP")
        return cls(*_decode_ack(body, protocol_level, PUBREL_CODES, "PUBCOMP"))
