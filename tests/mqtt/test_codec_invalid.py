"""Malformed and forbidden input raises the right ProtocolError subclass and reason code."""

from __future__ import annotations

import struct

import pytest

from lantern.mqtt.codec import Decoder
from lantern.mqtt.errors import (
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    ProtocolViolation,
    TopicAliasInvalid,
    TopicFilterInvalid,
    TopicNameInvalid,
    UnsupportedProtocolVersion,
)
from lantern.mqtt.primitives import encode_varint
from lantern.mqtt.reason_codes import ReasonCode as RC


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def pkt(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return encode_varint(len(body)) + body


def connect(
    level: int = 5,
    flags: int = 0x02,
    name: str = "MQTT",
    cprops: bytes = b"\x00",
    payload: bytes = s("c"),
    first: int = 0x10,
) -> bytes:
    head = s(name) + bytes((level, flags)) + b"\x00\x3c"
    return pkt(first, head + (cprops if level == 5 else b"") + payload)


def publish(
    level: int, topic: bytes | str = "a/b", pprops: bytes = b"\x00", first: int = 0x30
) -> bytes:
    pid = b"\x00\x01" if (first >> 1) & 3 else b""
    return pkt(first, s(topic) + pid + (pprops if level == 5 else b"") + b"payload")


def subscribe(
    level: int, *subs: tuple[str, int], sprops: bytes = b"\x00", first: int = 0x82
) -> bytes:
    body = b"".join(s(f) + bytes((o,)) for f, o in subs)
    return pkt(first, b"\x00\x07" + (sprops if level == 5 else b"") + body)


MAL, VIOL = MalformedPacket, ProtocolViolation

# (id, server side?, level, bytes, exception, reason code)
CASES: list[tuple[str, bool, int, bytes, type[ProtocolError], RC]] = [
    # Connection establishment (server decoder, nothing known yet).
    ("first packet PINGREQ", True, 0, b"\xc0\x00", VIOL, RC.PROTOCOL_ERROR),
    ("first packet PUBLISH", True, 0, publish(4), VIOL, RC.PROTOCOL_ERROR),
    ("level 3 MQIsdp", True, 0, connect(3, name="MQIsdp"), UnsupportedProtocolVersion, RC(0x84)),
    ("level 3 MQTT", True, 0, connect(3), UnsupportedProtocolVersion, RC(0x84)),
    ("level 6", True, 0, connect(6), UnsupportedProtocolVersion, RC(0x84)),
    ("bad protocol name", True, 0, connect(4, name="MQTX"), VIOL, RC.PROTOCOL_ERROR),
    ("CONNECT flags", True, 0, connect(first=0x11), MAL, RC.MALFORMED_PACKET),
    ("CONNECT reserved bit", True, 0, connect(flags=0x03), MAL, RC.MALFORMED_PACKET),
    (
        "will QoS 3",
        True,
        0,
        connect(flags=0x1E, payload=s("c") + b"\x00" + s("w") + s("x")),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    ("will QoS without will", True, 0, connect(flags=0x0A), MAL, RC.MALFORMED_PACKET),
    ("will retain without will", True, 0, connect(4, flags=0x22), MAL, RC.MALFORMED_PACKET),
    (
        "3.1.1 password without user",
        True,
        0,
        connect(4, flags=0x42, payload=s("c") + s("p")),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    ("client id bad UTF-8", True, 0, connect(payload=s(b"\xc3\x28")), MAL, RC.MALFORMED_PACKET),
    ("client id surrogate", True, 0, connect(payload=s(b"\xed\xa0\x80")), MAL, RC.MALFORMED_PACKET),
    ("client id U+0000", True, 0, connect(payload=s("a\x00b")), MAL, RC.MALFORMED_PACKET),
    (
        "CONNECT trailing bytes",
        True,
        0,
        connect(4, payload=s("c") + b"\x00"),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    (
        "CONNECT truncated string",
        True,
        0,
        connect(4, payload=b"\x00\x09abc"),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    (
        "CONNECT topic alias prop",
        True,
        0,
        connect(cprops=props(b"\x23\x00\x01")),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    ("CONNECT unknown prop", True, 0, connect(cprops=props(b"\x05\x00")), MAL, RC.MALFORMED_PACKET),
    (
        "CONNECT duplicate prop",
        True,
        0,
        connect(cprops=props(b"\x11\x00\x00\x00\x01", b"\x11\x00\x00\x00\x02")),
        VIOL,
        RC.PROTOCOL_ERROR,
    ),
    ("receive maximum 0", True, 0, connect(cprops=props(b"\x21\x00\x00")), VIOL, RC.PROTOCOL_ERROR),
    (
        "maximum packet size 0",
        True,
        0,
        connect(cprops=props(b"\x27\x00\x00\x00\x00")),
        VIOL,
        RC.PROTOCOL_ERROR,
    ),
    (
        "request problem info 2",
        True,
        0,
        connect(cprops=props(b"\x17\x02")),
        VIOL,
        RC.PROTOCOL_ERROR,
    ),
    (
        "will topic wildcard",
        True,
        0,
        connect(4, flags=0x06, payload=s("c") + s("a/#") + s("x")),
        TopicNameInvalid,
        RC.TOPIC_NAME_INVALID,
    ),
    (
        "will prop not allowed",
        True,
        0,
        connect(flags=0x06, payload=s("c") + props(b"\x23\x00\x01") + s("w") + s("x")),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    ("property length past end", True, 0, connect(cprops=b"\x09\x11"), MAL, RC.MALFORMED_PACKET),
    # Fixed header.
    ("packet type 0", False, 5, b"\x00\x00", MAL, RC.MALFORMED_PACKET),
    ("5-byte remaining length", False, 5, b"\x30\xff\xff\xff\xff\x7f", MAL, RC.MALFORMED_PACKET),
    ("AUTH in 3.1.1", False, 4, b"\xf0\x00", MAL, RC.MALFORMED_PACKET),
    ("PINGREQ with body", False, 4, b"\xc0\x01\x00", MAL, RC.MALFORMED_PACKET),
    ("PINGREQ flags", False, 4, b"\xc1\x00", MAL, RC.MALFORMED_PACKET),
    ("PINGRESP flags", False, 5, b"\xd8\x00", MAL, RC.MALFORMED_PACKET),
    # PUBLISH.
    ("QoS 3", False, 5, publish(5, first=0x36), MAL, RC.MALFORMED_PACKET),
    ("DUP on QoS 0", False, 4, publish(4, first=0x38), MAL, RC.MALFORMED_PACKET),
    ("topic '+'", False, 4, publish(4, "a/+/c"), TopicNameInvalid, RC.TOPIC_NAME_INVALID),
    ("topic '#'", False, 5, publish(5, "a/#"), TopicNameInvalid, RC.TOPIC_NAME_INVALID),
    ("topic bad UTF-8", False, 5, publish(5, b"a\xff"), MAL, RC.MALFORMED_PACKET),
    ("topic overlong UTF-8", False, 4, publish(4, b"\xc0\xaf"), MAL, RC.MALFORMED_PACKET),
    ("topic U+0000", False, 4, publish(4, "a\x00"), MAL, RC.MALFORMED_PACKET),
    ("empty topic 3.1.1", False, 4, publish(4, ""), TopicNameInvalid, RC.TOPIC_NAME_INVALID),
    ("empty topic no alias", False, 5, publish(5, ""), VIOL, RC.PROTOCOL_ERROR),
    ("packet id 0", False, 4, pkt(0x32, s("t") + b"\x00\x00"), MAL, RC.MALFORMED_PACKET),
    ("truncated packet id", False, 4, pkt(0x32, s("t") + b"\x00"), MAL, RC.MALFORMED_PACKET),
    (
        "PUBLISH session expiry",
        False,
        5,
        publish(5, pprops=props(b"\x11\x00\x00\x00\x01")),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    (
        "PUBLISH duplicate alias",
        False,
        5,
        publish(5, pprops=props(b"\x23\x00\x01", b"\x23\x00\x02")),
        VIOL,
        RC.PROTOCOL_ERROR,
    ),
    (
        "topic alias 0",
        False,
        5,
        publish(5, pprops=props(b"\x23\x00\x00")),
        TopicAliasInvalid,
        RC.TOPIC_ALIAS_INVALID,
    ),
    ("payload format 2", False, 5, publish(5, pprops=props(b"\x01\x02")), VIOL, RC.PROTOCOL_ERROR),
    ("subscription id 0", False, 5, publish(5, pprops=props(b"\x0b\x00")), VIOL, RC.PROTOCOL_ERROR),
    (
        "response topic wildcard",
        False,
        5,
        publish(5, pprops=props(b"\x08" + s("r/+"))),
        TopicNameInvalid,
        RC.TOPIC_NAME_INVALID,
    ),
    (
        "user property truncated",
        False,
        5,
        publish(5, pprops=props(b"\x26" + s("k"))),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    # Acknowledgements.
    ("PUBACK flags", False, 4, b"\x42\x02\x00\x01", MAL, RC.MALFORMED_PACKET),
    ("PUBREL flags", False, 5, b"\x60\x02\x00\x01", MAL, RC.MALFORMED_PACKET),
    ("PUBACK packet id 0", False, 5, b"\x40\x02\x00\x00", MAL, RC.MALFORMED_PACKET),
    ("PUBACK bad reason", False, 5, b"\x40\x03\x00\x01\x05", MAL, RC.MALFORMED_PACKET),
    ("PUBCOMP bad reason", False, 5, b"\x70\x03\x00\x01\x80", MAL, RC.MALFORMED_PACKET),
    ("3.1.1 PUBACK extra", False, 4, b"\x40\x03\x00\x01\x00", MAL, RC.MALFORMED_PACKET),
    (
        "PUBACK props not allowed",
        False,
        5,
        b"\x40\x06\x00\x01\x00\x02\x23\x00",
        MAL,
        RC.MALFORMED_PACKET,
    ),
    # SUBSCRIBE / UNSUBSCRIBE.
    ("SUBSCRIBE flags", False, 4, subscribe(4, ("a", 0), first=0x80), MAL, RC.MALFORMED_PACKET),
    ("empty SUBSCRIBE 3.1.1", False, 4, subscribe(4), VIOL, RC.PROTOCOL_ERROR),
    ("empty SUBSCRIBE 5", False, 5, subscribe(5), VIOL, RC.PROTOCOL_ERROR),
    (
        "SUBSCRIBE packet id 0",
        False,
        4,
        pkt(0x82, b"\x00\x00" + s("a") + b"\x00"),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    (
        "filter a/#/b",
        False,
        4,
        subscribe(4, ("a/#/b", 0)),
        TopicFilterInvalid,
        RC.TOPIC_FILTER_INVALID,
    ),
    ("filter a+", False, 5, subscribe(5, ("a+", 0)), TopicFilterInvalid, RC.TOPIC_FILTER_INVALID),
    ("filter a#", False, 5, subscribe(5, ("a#", 0)), TopicFilterInvalid, RC.TOPIC_FILTER_INVALID),
    ("empty filter", False, 4, subscribe(4, ("", 0)), TopicFilterInvalid, RC.TOPIC_FILTER_INVALID),
    (
        "share without filter",
        False,
        5,
        subscribe(5, ("$share/g", 0)),
        TopicFilterInvalid,
        RC.TOPIC_FILTER_INVALID,
    ),
    (
        "share empty group",
        False,
        5,
        subscribe(5, ("$share//a", 0)),
        TopicFilterInvalid,
        RC.TOPIC_FILTER_INVALID,
    ),
    (
        "share wildcard group",
        False,
        5,
        subscribe(5, ("$share/g+/a", 0)),
        TopicFilterInvalid,
        RC.TOPIC_FILTER_INVALID,
    ),
    ("subscription QoS 3", False, 5, subscribe(5, ("a", 3)), MAL, RC.MALFORMED_PACKET),
    ("3.1.1 option bits", False, 4, subscribe(4, ("a", 0x04)), MAL, RC.MALFORMED_PACKET),
    ("5.0 reserved option bits", False, 5, subscribe(5, ("a", 0x40)), MAL, RC.MALFORMED_PACKET),
    ("retain handling 3", False, 5, subscribe(5, ("a", 0x30)), VIOL, RC.PROTOCOL_ERROR),
    ("no local on shared", False, 5, subscribe(5, ("$share/g/a", 0x04)), VIOL, RC.PROTOCOL_ERROR),
    (
        "two subscription ids",
        False,
        5,
        subscribe(5, ("a", 0), sprops=props(b"\x0b\x01\x0b\x02")),
        VIOL,
        RC.PROTOCOL_ERROR,
    ),
    (
        "SUBSCRIBE reason string",
        False,
        5,
        subscribe(5, ("a", 0), sprops=props(b"\x1f" + s("r"))),
        MAL,
        RC.MALFORMED_PACKET,
    ),
    ("truncated options", False, 4, pkt(0x82, b"\x00\x01" + s("a")), MAL, RC.MALFORMED_PACKET),
    ("empty UNSUBSCRIBE", False, 4, pkt(0xA2, b"\x00\x01"), VIOL, RC.PROTOCOL_ERROR),
    ("UNSUBSCRIBE flags", False, 4, pkt(0xA0, b"\x00\x01" + s("a")), MAL, RC.MALFORMED_PACKET),
    (
        "UNSUBSCRIBE bad filter",
        False,
        5,
        pkt(0xA2, b"\x00\x01\x00" + s("#/a")),
        TopicFilterInvalid,
        RC.TOPIC_FILTER_INVALID,
    ),
    # Server-to-client packets (client-side decoding).
    ("CONNACK reserved flags", False, 5, b"\x20\x03\x02\x00\x00", MAL, RC.MALFORMED_PACKET),
    ("CONNACK return code 6", False, 4, b"\x20\x02\x00\x06", MAL, RC.MALFORMED_PACKET),
    ("CONNACK bad reason", False, 5, b"\x20\x03\x00\x10\x00", MAL, RC.MALFORMED_PACKET),
    ("CONNACK present on refusal", False, 4, b"\x20\x02\x01\x05", VIOL, RC.PROTOCOL_ERROR),
    ("SUBACK 3.1.1 code 0x87", False, 4, b"\x90\x03\x00\x01\x87", MAL, RC.MALFORMED_PACKET),
    ("UNSUBACK 3.1.1 extra", False, 4, b"\xb0\x03\x00\x01\x00", MAL, RC.MALFORMED_PACKET),
    ("DISCONNECT 3.1.1 body", False, 4, b"\xe0\x01\x00", MAL, RC.MALFORMED_PACKET),
    ("DISCONNECT bad reason", False, 5, b"\xe0\x01\x05", MAL, RC.MALFORMED_PACKET),
    ("AUTH bad reason", False, 5, b"\xf0\x01\x01", MAL, RC.MALFORMED_PACKET),
]


@pytest.mark.parametrize(
    ("server", "level", "data", "exc_type", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_invalid_input(
    server: bool, level: int, data: bytes, exc_type: type[ProtocolError], reason: RC
) -> None:
    decoder = Decoder() if server else Decoder(protocol_level=level, expect_connect=False)
    decoder.feed(data)
    with pytest.raises(ProtocolError) as info:
        decoder.next_packet()
    assert type(info.value) is exc_type
    assert info.value.reason_code == reason
    assert "[MQTT-" in str(info.value)
    # The decoder is dead afterwards: the same error again, and input is ignored.
    decoder.feed(b"\xc0\x00")
    with pytest.raises(exc_type):
        decoder.next_packet()


def test_unsupported_version_reports_level() -> None:
    for level in (3, 6):
        decoder = Decoder()
        decoder.feed(connect(level, name="MQIsdp" if level == 3 else "MQTT"))
        with pytest.raises(UnsupportedProtocolVersion) as info:
            decoder.next_packet()
        assert info.value.protocol_level == level


def test_oversize_rejected_from_the_fixed_header() -> None:
    decoder = Decoder(max_packet_size=100)
    decoder.feed(connect(4))
    assert decoder.next_packet() is not None
    decoder.feed(b"\x30\x63")  # 2 + 99 = 101 bytes announced; no body sent
    with pytest.raises(PacketTooLarge) as info:
        decoder.next_packet()
    assert info.value.reason_code == RC.PACKET_TOO_LARGE
    assert decoder.buffered == 2


def test_oversize_with_default_limit_and_exact_limit() -> None:
    decoder = Decoder()
    decoder.feed(b"\x10" + encode_varint(131_072))
    with pytest.raises(PacketTooLarge):
        decoder.next_packet()
    exact = Decoder(max_packet_size=10, protocol_level=4, expect_connect=False)
    exact.feed(pkt(0x30, s("t") + b"12345"))  # 2 + 8 = 10 bytes: allowed
    assert exact.next_packet() is not None


def test_four_continuation_bytes_fail_before_the_fifth_arrives() -> None:
    decoder = Decoder(protocol_level=5, expect_connect=False)
    decoder.feed(b"\x30\xff\xff\xff")
    assert decoder.next_packet() is None
    decoder.feed(b"\xff")
    with pytest.raises(MalformedPacket):
        decoder.next_packet()
