"""MQTT 5 reason codes, the per-packet sets they may appear in, and 3.1.1 translations."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AUTH_CODES",
    "CONNACK_CODES",
    "DISCONNECT_CODES",
    "PUBACK_CODES",
    "PUBREL_CODES",
    "SUBACK_CODES",
    "UNSUBACK_CODES",
    "ReasonCode",
    "connack_from_v311_return_code",
    "connack_v311_return_code",
]


class ReasonCode(IntEnum):
    """Every MQTT 5 reason code (OASIS MQTT 5.0 §2.4). 0x00 has the aliases below."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    REAUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


RC = ReasonCode

# The codes each packet type may carry (MQTT 5.0 §3.x.2.1); decoding anything else is malformed.
CONNACK_CODES: frozenset[ReasonCode] = frozenset(
    {RC.SUCCESS}
    | {RC(c) for c in (*range(0x80, 0x8B), 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D)}
    | {RC.CONNECTION_RATE_EXCEEDED}
)
PUBACK_CODES: frozenset[ReasonCode] = frozenset(
    RC(c) for c in (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
)
PUBREL_CODES: frozenset[ReasonCode] = frozenset({RC.SUCCESS, RC.PACKET_IDENTIFIER_NOT_FOUND})
SUBACK_CODES: frozenset[ReasonCode] = frozenset(
    RC(c) for c in (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
)
UNSUBACK_CODES: frozenset[ReasonCode] = frozenset(
    RC(c) for c in (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
)
DISCONNECT_CODES: frozenset[ReasonCode] = frozenset(
    RC(c)
    for c in (
        0x00,
        0x04,
        0x80,
        0x81,
        0x82,
        0x83,
        0x87,
        0x89,
        0x8B,
        0x8D,
        0x8E,
        0x8F,
        0x90,
        *range(0x93, 0xA3),
    )
)
AUTH_CODES: frozenset[ReasonCode] = frozenset(
    {RC.SUCCESS, RC.CONTINUE_AUTHENTICATION, RC.REAUTHENTICATE}
)

_V311_RETURN_CODE: dict[ReasonCode, int] = {
    RC.SUCCESS: 0,
    RC.UNSUPPORTED_PROTOCOL_VERSION: 1,
    RC.CLIENT_IDENTIFIER_NOT_VALID: 2,
    RC.SERVER_UNAVAILABLE: 3,
    RC.SERVER_BUSY: 3,
    RC.SERVER_SHUTTING_DOWN: 3,
    RC.USE_ANOTHER_SERVER: 3,
    RC.SERVER_MOVED: 3,
    RC.CONNECTION_RATE_EXCEEDED: 3,
    RC.BAD_USER_NAME_OR_PASSWORD: 4,
    RC.BAD_AUTHENTICATION_METHOD: 4,
    RC.NOT_AUTHORIZED: 5,
}
_FROM_V311_RETURN_CODE: dict[int, ReasonCode] = {
    0: RC.SUCCESS,
    1: RC.UNSUPPORTED_PROTOCOL_VERSION,
    2: RC.CLIENT_IDENTIFIER_NOT_VALID,
    3: RC.SERVER_UNAVAILABLE,
    4: RC.BAD_USER_NAME_OR_PASSWORD,
    5: RC.NOT_AUTHORIZED,
}


def connack_v311_return_code(rc: ReasonCode) -> int:
    """Map an MQTT 5 CONNACK reason code to the 3.1.1 return code (0-5).

    Server-side conditions (unavailable, busy, moved, rate) become 3 "server unavailable";
    any other refusal becomes 5 "not authorized".
    """
    return _V311_RETURN_CODE.get(rc, 5)


def connack_from_v311_return_code(code: int) -> ReasonCode | None:
    """The MQTT 5 reason code for a 3.1.1 CONNACK return code; None if it is reserved (6-255)."""
    return _FROM_V311_RETURN_CODE.get(code)
