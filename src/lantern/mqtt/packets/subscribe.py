"""SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (OASIS MQTT 5.0 §3.8-3.11)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from lantern.mqtt.errors import LocalProtocolError, MalformedPacket, ProtocolViolation
from lantern.mqtt.primitives import (
    MQTT5,
    check_flags,
    decode_packet_id,
    decode_reason_code,
    decode_u8,
    decode_utf8,
    encode_packet_id,
    encode_utf8,
    fixed_header,
)
from lantern.mqtt.properties import (
    EMPTY_PROPERTIES,
    SUBACK_PROPS,
    SUBSCRIBE_PROPS,
    UNSUBACK_PROPS,
    UNSUBSCRIBE_PROPS,
    Properties,
    decode_properties,
    encode_properties,
)
from lantern.mqtt.reason_codes import SUBACK_CODES, UNSUBACK_CODES, ReasonCode
from lantern.mqtt.topics import SHARE_PREFIX, validate_topic_filter

__all__ = ["Suback", "Subscribe", "SubscriptionRequest", "Unsuback", "Unsubscribe"]

_SUBACK_V311_CODES: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.GRANTED_QOS_0,
        ReasonCode.GRANTED_QOS_1,
        ReasonCode.GRANTED_QOS_2,
        ReasonCode.UNSPECIFIED_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """One topic filter of a SUBSCRIBE with its options (the MQTT 5 ones are 0 in 3.1.1)."""

    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0

    def options_byte(self, protocol_level: int) -> int:
        """The subscription options byte ([MQTT-3.8.3.1])."""
        if not 0 <= self.qos <= 2:
            raise LocalProtocolError(f"[MQTT-3.8.3-4] subscription QoS {self.qos} out of range")
        if protocol_level != MQTT5:
            return self.qos
        if not 0 <= self.retain_handling <= 2:
            raise LocalProtocolError(f"[MQTT-3.8.3.1] retain handling {self.retain_handling}")
        return (
            self.qos
            | (4 if self.no_local else 0)
            | (8 if self.retain_as_published else 0)
            | self.retain_handling << 4
        )


def _ids_and_props(
    first: int, packet_id: int, props: Properties, protocol_level: int, parts: list[bytes]
) -> bytes:
    head = encode_packet_id(packet_id)
    if protocol_level == MQTT5:
        head += encode_properties(props)
    body = b"".join(parts)
    return fixed_header(first, len(head) + len(body)) + head + body


def _decode_head(
    body: memoryview, protocol_level: int, allowed: frozenset[int], name: str
) -> tuple[int, Properties, int]:
    packet_id, pos = decode_packet_id(body, 0, name)
    props = EMPTY_PROPERTIES
    if protocol_level == MQTT5:
        props, pos = decode_properties(body, pos, allowed, name)
    return packet_id, props, pos


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: at least one subscription request."""

    packet_id: int
    subscriptions: tuple[SubscriptionRequest, ...]
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode for ``protocol_level``."""
        if not self.subscriptions:
            raise LocalProtocolError("[MQTT-3.8.3-2] SUBSCRIBE needs at least one topic filter")
        parts = []
        for sub in self.subscriptions:
            parts.append(encode_utf8(sub.topic_filter))
            parts.append(bytes((sub.options_byte(protocol_level),)))
        return _ids_and_props(0x82, self.packet_id, self.properties, protocol_level, parts)

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a SUBSCRIBE body, validating every filter and option byte."""
        check_flags(flags, 2, "SUBSCRIBE")
        packet_id, props, pos = _decode_head(body, protocol_level, SUBSCRIBE_PROPS, "SUBSCRIBE")
        if len(props.subscription_identifiers) > 1:
            raise ProtocolViolation("[MQTT-3.8.2.1.2] more than one subscription identifier")
        v5 = protocol_level == MQTT5
        subs = []
        end = len(body)
        while pos < end:
            topic_filter, pos = decode_utf8(body, pos)
            validate_topic_filter(topic_filter)
            options, pos = decode_u8(body, pos)
            qos = options & 3
            if qos == 3:
                raise MalformedPacket("[MQTT-3.8.3-4] subscription QoS must not be 3")
            if not v5:
                if options & 0xFC:
                    raise MalformedPacket("[MQTT-3.8.3-4] reserved subscription option bits set")
                subs.append(SubscriptionRequest(topic_filter, qos))
                continue
            if options & 0xC0:
                raise MalformedPacket("[MQTT-3.8.3-5] reserved subscription option bits set")
            retain_handling = (options >> 4) & 3
            if retain_handling == 3:
                raise ProtocolViolation("[MQTT-3.8.3.1] retain handling must not be 3")
            no_local = bool(options & 4)
            if no_local and topic_filter.startswith(SHARE_PREFIX):
                raise ProtocolViolation("[MQTT-3.8.3-4] no local on a shared subscription")
            subs.append(
                SubscriptionRequest(topic_filter, qos, no_local, bool(options & 8), retain_handling)
            )
        if not subs:
            raise ProtocolViolation("[MQTT-3.8.3-2] SUBSCRIBE has no topic filter")
        return cls(packet_id, tuple(subs), props)


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK: one reason code per requested filter (3.1.1 can say 0, 1, 2 or 0x80)."""

    packet_id: int
    reason_codes: tuple[ReasonCode, ...]
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; at level 4 every failure code becomes 0x80."""
        if protocol_level == MQTT5:
            for rc in self.reason_codes:
                if rc not in SUBACK_CODES:
                    raise LocalProtocolError(f"[MQTT-3.9.3] {rc!r} is not a SUBACK reason code")
            codes = bytes(self.reason_codes)
        else:
            codes = bytes(rc if rc < 0x80 else 0x80 for rc in self.reason_codes)
        return _ids_and_props(0x90, self.packet_id, self.properties, protocol_level, [codes])

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode a SUBACK body."""
        check_flags(flags, 0, "SUBACK")
        packet_id, props, pos = _decode_head(body, protocol_level, SUBACK_PROPS, "SUBACK")
        allowed = SUBACK_CODES if protocol_level == MQTT5 else _SUBACK_V311_CODES
        codes = []
        while pos < len(body):
            rc, pos = decode_reason_code(body, pos, allowed, "SUBACK")
            codes.append(rc)
        if not codes:
            raise ProtocolViolation("[MQTT-3.9.3] SUBACK has no reason code")
        return cls(packet_id, tuple(codes), props)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: at least one topic filter."""

    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode for ``protocol_level``."""
        if not self.topic_filters:
            raise LocalProtocolError("[MQTT-3.10.3-2] UNSUBSCRIBE needs at least one filter")
        parts = [encode_utf8(f) for f in self.topic_filters]
        return _ids_and_props(0xA2, self.packet_id, self.properties, protocol_level, parts)

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode an UNSUBSCRIBE body, validating every filter."""
        check_flags(flags, 2, "UNSUBSCRIBE")
        packet_id, props, pos = _decode_head(body, protocol_level, UNSUBSCRIBE_PROPS, "UNSUBSCRIBE")
        filters = []
        while pos < len(body):
            topic_filter, pos = decode_utf8(body, pos)
            validate_topic_filter(topic_filter)
            filters.append(topic_filter)
        if not filters:
            raise ProtocolViolation("[MQTT-3.10.3-2] UNSUBSCRIBE has no topic filter")
        return cls(packet_id, tuple(filters), props)


@dataclass(frozen=True, slots=True)
class Unsuback:
    """UNSUBACK: MQTT 5 has one reason code per filter; 3.1.1 has none (``()``)."""

    packet_id: int
    reason_codes: tuple[ReasonCode, ...] = ()
    properties: Properties = EMPTY_PROPERTIES

    def encode(self, protocol_level: int) -> bytes:
        """Encode; at level 4 only the packet identifier is sent."""
        if protocol_level != MQTT5:
            return b"\xb0\x02" + encode_packet_id(self.packet_id)
        for rc in self.reason_codes:
            if rc not in UNSUBACK_CODES:
                raise LocalProtocolError(f"[MQTT-3.11.3] {rc!r} is not an UNSUBACK reason code")
        return _ids_and_props(
            0xB0, self.packet_id, self.properties, protocol_level, [bytes(self.reason_codes)]
        )

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Decode an UNSUBACK body."""
        check_flags(flags, 0, "UNSUBACK")
        packet_id, props, pos = _decode_head(body, protocol_level, UNSUBACK_PROPS, "UNSUBACK")
        codes = []
        if protocol_level == MQTT5:
            while pos < len(body):
                rc, pos = decode_reason_code(body, pos, UNSUBACK_CODES, "UNSUBACK")
                codes.append(rc)
            if not codes:
                raise ProtocolViolation("[MQTT-3.11.3] UNSUBACK has no reason code")
        elif pos != len(body):
            raise MalformedPacket("[MQTT-3.11.2] 3.1.1 UNSUBACK carries only a packet identifier")
        return cls(packet_id, tuple(codes), props)
