"""CONNECT, CONNACK, DISCONNECT and AUTH (OASIS MQTT 3.1.1 §3.1-3.2, 3.14; 5.0 §3.1-3.2, 3.14-3.15).

``encode(protocol_level)`` returns the whole packet; ``decode(flags, body, protocol_level)``
parses the body (the bytes after the fixed header) and raises ProtocolError subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from lantern.mqtt.errors import (
    LocalProtocolError,
    MalformedPacket,
    ProtocolViolation,
    UnsupportedProtocolVersion,
)
from lantern.mqtt.primitives import (
    MQTT5,
    MQTT311,
    U16,
    check_flags,
    decode_binary,
    decode_reason_code,
    decode_u8,
    decode_u16,
    decode_utf8,
    encode_binary,
    encode_utf8,
    expect_end,
    fixed_header,
)
from lantern.mqtt.properties import (
    AUTH_PROPS,
    CONNACK_PROPS,
    CONNECT_PROPS,
    DISCONNECT_PROPS,
    EMPTY_PROPERTIES,
    WILL_PROPS,
    Properties,
    decode_properties,
    encode_properties,
)
from lantern.mqtt.reason_codes import (
    AUTH_CODES,
    CONNACK_CODES,
    DISCONNECT_CODES,
    ReasonCode,
    connack_from_v311_return_code,
    connack_v311_return_code,
)
from lantern.mqtt.topics import validate_topic_name

__all__ = ["Auth", "Connack", "Connect", "Disconnect", "Will"]

CONNECT, CONNACK, DISCONNECT, AUTH = 1, 2, 14, 15
SUPPORTED_LEVELS = (MQTT311, MQTT5)


@dataclass(frozen=True, slots=True)
class Will:
    """The will message carried in CONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT. It is encoded at its own ``protocol_level`` (the argument of encode is ignored)."""

    client_id: str
    protocol_level: int
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = EMPTY_PROPERTIES
    protocol_name: str = "MQTT"

    def encode(self, protocol_level: int = MQTT5) -> bytes:
        """Encode at ``self.protocol_level``."""
        level = self.protocol_level
        v5 = level == MQTT5
        will = self.will
        flags = 0x02 if self.clean_start else 0
        payload = [encode_utf8(self.client_id)]
        if will is not None:
            if will.qos not in (0, 1, 2):
                raise LocalProtocolError(f"[MQTT-3.1.2-12] will QoS {will.qos} is not 0, 1 or 2")
            flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
            if v5:
                payload.append(encode_properties(will.properties))
            payload.append(encode_utf8(will.topic))
            payload.append(encode_binary(will.payload))
        if self.username is not None:
            flags |= 0x80
            payload.append(encode_utf8(self.username))
        if self.password is not None:
            if self.username is None and not v5:
                raise LocalProtocolError("[MQTT-3.1.2-22] a 3.1.1 password needs a user name")
            flags |= 0x40
            payload.append(encode_binary(self.password))
        if not 0 <= self.keep_alive <= 0xFFFF:
            raise LocalProtocolError(f"[MQTT-3.1.2.10] keep alive {self.keep_alive} out of range")
        parts = [
            encode_utf8(self.protocol_name),
            bytes((level, flags)),
            U16.pack(self.keep_alive),
        ]
        if v5:
            parts.append(encode_properties(self.properties))
        parts += payload
        body = b"".join(parts)
        return fixed_header(CONNECT << 4, len(body)) + body

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int | None = None) -> Self:
        """Decode a CONNECT body; its own protocol level decides the format."""
        check_flags(flags, 0, "CONNECT")
        name, pos = decode_utf8(body, 0)
        level, pos = decode_u8(body, pos)
        if name == "MQIsdp" or (name == "MQTT" and level not in SUPPORTED_LEVELS):
            raise UnsupportedProtocolVersion(
                f"[MQTT-3.1.2-2] protocol {name!r} level {level} is not supported", level
            )
        if name != "MQTT":
            raise ProtocolViolation(f"[MQTT-3.1.2-1] protocol name {name!r} is not 'MQTT'")
        v5 = level == MQTT5
        cflags, pos = decode_u8(body, pos)
        if cflags & 0x01:
            raise MalformedPacket("[MQTT-3.1.2-3] CONNECT reserved flag must be 0")
        will_flag = cflags & 0x04
        will_qos = (cflags >> 3) & 3
        will_retain = bool(cflags & 0x20)
        if not will_flag and (will_qos or will_retain):
            raise MalformedPacket("[MQTT-3.1.2-11] will QoS and retain must be 0 without a will")
        if will_qos == 3:
            raise MalformedPacket("[MQTT-3.1.2-12] will QoS must not be 3")
        if not v5 and cflags & 0x40 and not cflags & 0x80:
            raise MalformedPacket("[MQTT-3.1.2-22] password flag set without user name flag")
        keep_alive, pos = decode_u16(body, pos)
        props = EMPTY_PROPERTIES
        if v5:
            props, pos = decode_properties(body, pos, CONNECT_PROPS, "CONNECT")
        client_id, pos = decode_utf8(body, pos)
        will = None
        if will_flag:
            will_props = EMPTY_PROPERTIES
            if v5:
                will_props, pos = decode_properties(body, pos, WILL_PROPS, "CONNECT will")
            will_topic, pos = decode_utf8(body, pos)
            validate_topic_name(will_topic)
            will_payload, pos = decode_binary(body, pos)
            will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
        username = password = None
        if cflags & 0x80:
            username, pos = decode_utf8(body, pos)
        if cflags & 0x40:
            password, pos = decode_binary(body, pos)
        expect_end(body, pos, "CONNECT")
        return cls(
            client_id,
            level,
            bool(cflags & 0x02),
            keep_alive,
            username,
            password,
            will,
            props,
            name,
        )


@dataclass(frozen=True, slots=True)
class Connack:
    """CONNACK. At level 4 the reason code is sent as the 3.1.1 return code, without properties."""

    session_present: bool
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode for ``protocol_level`` (4 or 5)."""
        rc = self.reason_code
        if self.session_present and rc:
            raise LocalProtocolError("[MQTT-3.2.2-6] session present must be 0 on a refusal")
        if protocol_level != MQTT5:
            return bytes((0x20, 2, 1 if self.session_present else 0, connack_v311_return_code(rc)))
        if rc not in CONNACK_CODES:
            raise LocalProtocolError(f"[MQTT-3.2.2.2] {rc!r} is not a CONNACK reason code")
        props = encode_properties(self.properties)
        return (
            fixed_header(0x20, 2 + len(props))
            + bytes((1 if self.session_present else 0, rc))
            + props
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a CONNACK body."""
        check_flags(flags, 0, "CONNACK")
        ack_flags, pos = decode_u8(body, 0)
        if ack_flags & 0xFE:
            raise MalformedPacket("[MQTT-3.2.2-1] CONNACK acknowledge flags bits 7-1 must be 0")
        props = EMPTY_PROPERTIES
        if protocol_level == MQTT5:
            rc, pos = decode_reason_code(body, pos, CONNACK_CODES, "CONNACK")
            props, pos = decode_properties(body, pos, CONNACK_PROPS, "CONNACK")
        else:
            code, pos = decode_u8(body, pos)
            mapped = connack_from_v311_return_code(code)
            if mapped is None:
                raise MalformedPacket(f"[MQTT-3.2.2.3] reserved CONNACK return code {code}")
            rc = mapped
        expect_end(body, pos, "CONNACK")
        if ack_flags and rc:
            raise ProtocolViolation("[MQTT-3.2.2-6] session present set on a refused CONNACK")
        return cls(bool(ack_flags), rc, props)


def _encode_reason_only(
    first: int, rc: ReasonCode, props: Properties, allowed: frozenset[ReasonCode], name: str
) -> bytes:
    if rc not in allowed:
        raise LocalProtocolError(f"[MQTT-2.4] {rc!r} is not a {name} reason code")
    encoded = encode_properties(props)
    if encoded == b"\x00":
        return bytes((first, 0)) if rc == 0 else bytes((first, 1, rc))
    return fixed_header(first, 1 + len(encoded)) + bytes((rc,)) + encoded


def _decode_reason_only(
    body: memoryview, allowed: frozenset[ReasonCode], props_allowed: frozenset[int], name: str
) -> tuple[ReasonCode, Properties]:
    if not body:
        return ReasonCode.SUCCESS, EMPTY_PROPERTIES
    rc, pos = decode_reason_code(body, 0, allowed, name)
    props = EMPTY_PROPERTIES
    if pos < len(body):
        props, pos = decode_properties(body, pos, props_allowed, name)
    expect_end(body, pos, name)
    return rc, props


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT. At level 4 it carries nothing (and only clients may send it in 3.1.1)."""

    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode for ``protocol_level``; 3.1.1 drops the reason code and properties."""
        if protocol_level != MQTT5:
            return b"\xe0\x00"
        return _encode_reason_only(
            0xE0, self.reason_code, self.properties, DISCONNECT_CODES, "DISCONNECT"
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a DISCONNECT body."""
        check_flags(flags, 0, "DISCONNECT")
        if protocol_level != MQTT5:
            expect_end(body, 0, "DISCONNECT")
            return cls()
        return cls(*_decode_reason_only(body, DISCONNECT_CODES, DISCONNECT_PROPS, "DISCONNECT"))


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH (MQTT 5 only): enhanced authentication exchange."""

    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; AUTH does not exist in MQTT 3.1.1."""
        if protocol_level != MQTT5:
            raise LocalProtocolError("[MQTT-2.1.2] AUTH does not exist in MQTT 3.1.1")
        return _encode_reason_only(0xF0, self.reason_code, self.properties, AUTH_CODES, "AUTH")

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode an AUTH body."""
        if protocol_level != MQTT5:
            raise MalformedPacket("[MQTT-2.1.2] packet type 15 is reserved in MQTT 3.1.1")
        check_flags(flags, 0, "AUTH")
        return cls(*_decode_reason_only(body, AUTH_CODES, AUTH_PROPS, "AUTH"))
