"""MQTT 5 properties (OASIS MQTT 5.0 §2.2.2): one frozen dataclass and its codec.

Each packet type allows a fixed set of property identifiers (the ``*_PROPS`` sets below).
Decoding rejects, as the spec says:

* an unknown identifier or one not allowed on that packet -> :class:`MalformedPacket`;
* a property given twice (except User Property, and Subscription Identifier on PUBLISH)
  -> :class:`ProtocolViolation`;
* an out-of-range value (receive maximum 0, a boolean byte other than 0/1, ...)
  -> :class:`ProtocolViolation` (topic alias 0 -> :class:`TopicAliasInvalid`).

Encoding writes properties in identifier order; user properties keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

from lantern.mqtt.errors import (
    LocalProtocolError,
    MalformedPacket,
    ProtocolViolation,
    TopicAliasInvalid,
)
from lantern.mqtt.primitives import (
    U16,
    U32,
    decode_binary,
    decode_u8,
    decode_u16,
    decode_u32,
    decode_utf8,
    decode_varint,
    encode_binary,
    encode_utf8,
    encode_varint,
)

__all__ = [
    "AUTH_PROPS",
    "CONNACK_PROPS",
    "CONNECT_PROPS",
    "DISCONNECT_PROPS",
    "EMPTY_PROPERTIES",
    "PUBACK_PROPS",
    "PUBLISH_PROPS",
    "SUBACK_PROPS",
    "SUBSCRIBE_PROPS",
    "UNSUBACK_PROPS",
    "UNSUBSCRIBE_PROPS",
    "WILL_PROPS",
    "Properties",
    "decode_properties",
    "encode_properties",
]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Properties:
    """Every MQTT 5 property; ``None`` (or ``()``) means absent."""

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: bool | None = None
    will_delay_interval: int | None = None
    request_response_information: bool | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: bool | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: bool | None = None
    subscription_identifier_available: bool | None = None
    shared_subscription_available: bool | None = None

    def __repr__(self) -> str:
        """Only the properties that are present."""
        shown = ", ".join(
            f"{f.name}={value!r}"
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None and value != ()
        )
        return f"Properties({shown})"


EMPTY_PROPERTIES: Final = Properties()

# Value kinds.
_BYTE, _BOOL, _U16, _U32, _VARINT, _UTF8, _BINARY = range(7)
SUBSCRIPTION_IDENTIFIER: Final = 0x0B
USER_PROPERTY: Final = 0x26
TOPIC_ALIAS: Final = 0x23

# identifier -> (field name, kind); subscription identifier and user property are special.
_SPEC: Final[dict[int, tuple[str, int]]] = {
    0x01: ("payload_format_indicator", _BYTE),
    0x02: ("message_expiry_interval", _U32),
    0x03: ("content_type", _UTF8),
    0x08: ("response_topic", _UTF8),
    0x09: ("correlation_data", _BINARY),
    0x11: ("session_expiry_interval", _U32),
    0x12: ("assigned_client_identifier", _UTF8),
    0x13: ("server_keep_alive", _U16),
    0x15: ("authentication_method", _UTF8),
    0x16: ("authentication_data", _BINARY),
    0x17: ("request_problem_information", _BOOL),
    0x18: ("will_delay_interval", _U32),
    0x19: ("request_response_information", _BOOL),
    0x1A: ("response_information", _UTF8),
    0x1C: ("server_reference", _UTF8),
    0x1F: ("reason_string", _UTF8),
    0x21: ("receive_maximum", _U16),
    0x22: ("topic_alias_maximum", _U16),
    0x23: ("topic_alias", _U16),
    0x24: ("maximum_qos", _BYTE),
    0x25: ("retain_available", _BOOL),
    0x27: ("maximum_packet_size", _U32),
    0x28: ("wildcard_subscription_available", _BOOL),
    0x29: ("subscription_identifier_available", _BOOL),
    0x2A: ("shared_subscription_available", _BOOL),
}
_ENCODE_ORDER: Final = tuple(
    (name, bytes((ident,)), kind) for ident, (name, kind) in sorted(_SPEC.items())
)
# Values that must be non-zero (byte-sized values must be 0 or 1).
_NONZERO: Final = frozenset({0x21, 0x23, 0x27})


def _allowed(*idents: int) -> frozenset[int]:
    return frozenset((*idents, USER_PROPERTY))


CONNECT_PROPS: Final = _allowed(0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x27)
CONNACK_PROPS: Final = _allowed(
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x27, 0x28, 0x29, 0x2A
)
WILL_PROPS: Final = _allowed(0x01, 0x02, 0x03, 0x08, 0x09, 0x18)
PUBLISH_PROPS: Final = _allowed(0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23)
PUBACK_PROPS: Final = _allowed(0x1F)
"""Allowed on PUBACK, PUBREC, PUBREL and PUBCOMP."""
SUBSCRIBE_PROPS: Final = _allowed(0x0B)
SUBACK_PROPS: Final = _allowed(0x1F)
UNSUBSCRIBE_PROPS: Final = _allowed()
UNSUBACK_PROPS: Final = _allowed(0x1F)
DISCONNECT_PROPS: Final = _allowed(0x11, 0x1C, 0x1F)
AUTH_PROPS: Final = _allowed(0x15, 0x16, 0x1F)

_pack16 = U16.pack
_pack32 = U32.pack
_UP_PREFIX: Final = bytes((USER_PROPERTY,))
_SI_PREFIX: Final = bytes((SUBSCRIPTION_IDENTIFIER,))


def encode_properties(props: Properties, extra: bytes = b"") -> bytes:
    """The property block: its variable byte integer length followed by the properties.

    ``extra`` is already-encoded properties to append (used to add a topic alias cheaply).
    """
    if props is EMPTY_PROPERTIES:
        return encode_varint(len(extra)) + extra if extra else b"\x00"
    parts: list[bytes] = []
    append = parts.append
    for name, prefix, kind in _ENCODE_ORDER:
        value = getattr(props, name)
        if value is None:
            continue
        append(prefix)
        if kind is _UTF8:
            append(encode_utf8(value))
        elif kind is _U32:
            append(_pack32(value))
        elif kind is _U16:
            append(_pack16(value))
        elif kind is _BINARY:
            append(encode_binary(value))
        else:  # _BYTE, _BOOL
            append(bytes((int(value),)))
    for sid in props.subscription_identifiers:
        if sid == 0:
            raise LocalProtocolError("[MQTT-3.8.2.1.2] subscription identifier 0")
        append(_SI_PREFIX)
        append(encode_varint(sid))
    for key, val in props.user_properties:
        append(_UP_PREFIX)
        append(encode_utf8(key))
        append(encode_utf8(val))
    append(extra)
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def decode_properties(
    buf: memoryview, pos: int, allowed: frozenset[int], packet: str
) -> tuple[Properties, int]:
    """Decode the property block at ``pos``; ``allowed`` is the packet's identifier set."""
    length, pos = decode_varint(buf, pos)
    if length == 0:
        return EMPTY_PROPERTIES, pos
    end = pos + length
    if end > len(buf):
        raise MalformedPacket(f"[MQTT-2.2.2-1] {packet} property length runs past the packet")
    view = buf[:end]
    values: dict[str, Any] = {}
    user: list[tuple[str, str]] = []
    sub_ids: list[int] = []
    while pos < end:
        ident, pos = decode_varint(view, pos)
        if ident not in allowed:
            raise MalformedPacket(
                f"[MQTT-2.2.2-2] property 0x{ident:02X} is not allowed on {packet}"
            )
        if ident == USER_PROPERTY:
            key, pos = decode_utf8(view, pos)
            val, pos = decode_utf8(view, pos)
            user.append((key, val))
            continue
        if ident == SUBSCRIPTION_IDENTIFIER:
            sid, pos = decode_varint(view, pos)
            if sid == 0:
                raise ProtocolViolation("[MQTT-3.8.2.1.2] subscription identifier 0")
            sub_ids.append(sid)
            continue
        name, kind = _SPEC[ident]
        value: Any
        if kind is _UTF8:
            value, pos = decode_utf8(view, pos)
        elif kind is _U32:
            value, pos = decode_u32(view, pos)
        elif kind is _U16:
            value, pos = decode_u16(view, pos)
        elif kind is _BINARY:
            value, pos = decode_binary(view, pos)
        else:
            value, pos = decode_u8(view, pos)
            if value > 1:
                raise ProtocolViolation(
                    f"[MQTT-2.2.2] {name} must be 0 or 1 on {packet}, got {value}"
                )
            if kind is _BOOL:
                value = bool(value)
        if value == 0 and ident in _NONZERO:
            if ident == TOPIC_ALIAS:
                raise TopicAliasInvalid("[MQTT-3.3.2.3.4] topic alias 0 is not permitted")
            raise ProtocolViolation(f"[MQTT-2.2.2] {name} must not be 0 on {packet}")
        if name in values:
            raise ProtocolViolation(f"[MQTT-2.2.2] {name} appears twice on {packet}")
        values[name] = value
    if user:
        values["user_properties"] = tuple(user)
    if sub_ids:
        values["subscription_identifiers"] = tuple(sub_ids)
    return Properties(**values), end
