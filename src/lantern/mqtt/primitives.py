"""Wire primitives: variable byte integers, fixed integers, UTF-8 strings, binary data.

Decoders read from a ``memoryview`` at an offset and return ``(value, new_offset)``; they never
read past ``len(buf)`` (the caller slices the view to the packet or property block) and raise
:class:`MalformedPacket` on truncated or invalid input. Encoders return ``bytes`` and raise
:class:`LocalProtocolError` for values the protocol cannot carry.
"""

from __future__ import annotations

import struct

from lantern.mqtt.errors import LocalProtocolError, MalformedPacket
from lantern.mqtt.reason_codes import ReasonCode

__all__ = [
    "MAX_VARINT",
    "MQTT5",
    "MQTT311",
    "U16",
    "U32",
    "check_flags",
    "decode_binary",
    "decode_packet_id",
    "decode_reason_code",
    "decode_u8",
    "decode_u16",
    "decode_u32",
    "decode_utf8",
    "decode_varint",
    "encode_binary",
    "encode_packet_id",
    "encode_utf8",
    "encode_varint",
    "expect_end",
    "fixed_header",
]

MQTT311 = 4
"""Protocol level of MQTT 3.1.1."""
MQTT5 = 5
"""Protocol level of MQTT 5.0."""

MAX_VARINT = 268_435_455
"""Largest value a four-byte variable byte integer can hold."""

U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
_u16_unpack = U16.unpack_from
_u32_unpack = U32.unpack_from
_u16_pack = U16.pack

_ONE_BYTE: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))


def encode_varint(n: int) -> bytes:
    """Encode ``n`` (0..268435455) as a variable byte integer (MQTT 5.0 §1.5.5)."""
    if n < 0x80:
        if n < 0:
            raise LocalProtocolError(f"[MQTT-1.5.5] negative variable byte integer {n}")
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    if n <= MAX_VARINT:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, (n >> 14) & 0x7F | 0x80, n >> 21))
    raise LocalProtocolError(f"[MQTT-1.5.5] {n} does not fit a variable byte integer")


def fixed_header(first: int, remaining: int) -> bytes:
    """The fixed header: first byte (type and flags) and the remaining length."""
    if remaining < 0x80:
        return bytes((first, remaining))
    return _ONE_BYTE[first] + encode_varint(remaining)


def decode_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode a variable byte integer of at most four bytes at ``pos``."""
    value = 0
    shift = 0
    end = len(buf)
    for _ in range(4):
        if pos >= end:
            raise MalformedPacket("[MQTT-1.5.5] truncated variable byte integer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise MalformedPacket("[MQTT-1.5.5] variable byte integer longer than four bytes")


def decode_u8(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one byte."""
    if pos >= len(buf):
        raise MalformedPacket("[MQTT-1.5.1] truncated byte")
    return buf[pos], pos + 1


def decode_u16(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode a big-endian two-byte integer."""
    if pos + 2 > len(buf):
        raise MalformedPacket("[MQTT-1.5.2] truncated two byte integer")
    return _u16_unpack(buf, pos)[0], pos + 2


def decode_u32(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode a big-endian four-byte integer."""
    if pos + 4 > len(buf):
        raise MalformedPacket("[MQTT-1.5.3] truncated four byte integer")
    return _u32_unpack(buf, pos)[0], pos + 4


def decode_utf8(buf: memoryview, pos: int) -> tuple[str, int]:
    """Decode a length-prefixed UTF-8 string; ill-formed UTF-8 or U+0000 is malformed."""
    if pos + 2 > len(buf):
        raise MalformedPacket("[MQTT-1.5.4] truncated UTF-8 string length")
    end = pos + 2 + _u16_unpack(buf, pos)[0]
    if end > len(buf):
        raise MalformedPacket("[MQTT-1.5.4] UTF-8 string runs past the end of the packet")
    try:
        text = str(buf[pos + 2 : end], "utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("[MQTT-1.5.4-1] ill-formed UTF-8 string") from None
    if "\x00" in text:
        raise MalformedPacket("[MQTT-1.5.4-2] UTF-8 string contains U+0000")
    return text, end


def decode_binary(buf: memoryview, pos: int) -> tuple[bytes, int]:
    """Decode length-prefixed binary data."""
    if pos + 2 > len(buf):
        raise MalformedPacket("[MQTT-1.5.6] truncated binary data length")
    end = pos + 2 + _u16_unpack(buf, pos)[0]
    if end > len(buf):
        raise MalformedPacket("[MQTT-1.5.6] binary data runs past the end of the packet")
    return bytes(buf[pos + 2 : end]), end


def encode_utf8(text: str) -> bytes:
    """Encode a length-prefixed UTF-8 string (at most 65535 bytes, no U+0000)."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        raise LocalProtocolError("[MQTT-1.5.4-1] string is not valid UTF-8") from None
    if len(data) > 0xFFFF:
        raise LocalProtocolError("[MQTT-1.5.4] UTF-8 string longer than 65535 bytes")
    if "\x00" in text:
        raise LocalProtocolError("[MQTT-1.5.4-2] UTF-8 string contains U+0000")
    return _u16_pack(len(data)) + data


def encode_binary(data: bytes) -> bytes:
    """Encode length-prefixed binary data (at most 65535 bytes)."""
    if len(data) > 0xFFFF:
        raise LocalProtocolError("[MQTT-1.5.6] binary data longer than 65535 bytes")
    return _u16_pack(len(data)) + data


_REASON_CODES: dict[int, ReasonCode] = {int(rc): rc for rc in ReasonCode}


def decode_reason_code(
    buf: memoryview, pos: int, allowed: frozenset[ReasonCode], packet: str
) -> tuple[ReasonCode, int]:
    """Decode a reason code byte that must be one of ``allowed`` for ``packet``."""
    if pos >= len(buf):
        raise MalformedPacket(f"[MQTT-2.4] truncated {packet} reason code")
    value = buf[pos]
    if value not in allowed:
        raise MalformedPacket(f"[MQTT-2.4] reason code 0x{value:02X} is not valid on {packet}")
    return _REASON_CODES[value], pos + 1


def decode_packet_id(buf: memoryview, pos: int, packet: str) -> tuple[int, int]:
    """Decode a packet identifier, which must be non-zero ([MQTT-2.2.1-3])."""
    if pos + 2 > len(buf):
        raise MalformedPacket(f"[MQTT-2.2.1] truncated {packet} packet identifier")
    pid: int = _u16_unpack(buf, pos)[0]
    if pid == 0:
        raise MalformedPacket(f"[MQTT-2.2.1-3] {packet} packet identifier must not be 0")
    return pid, pos + 2


def encode_packet_id(pid: int | None) -> bytes:
    """Encode a packet identifier (1..65535)."""
    if pid is None or not 0 < pid <= 0xFFFF:
        raise LocalProtocolError(f"[MQTT-2.2.1-3] packet identifier {pid!r} is not in 1..65535")
    return _u16_pack(pid)


def check_flags(flags: int, expected: int, packet: str) -> None:
    """Fixed header flags that are reserved must have their fixed value ([MQTT-2.1.3-1])."""
    if flags != expected:
        raise MalformedPacket(
            f"[MQTT-2.1.3-1] {packet} fixed header flags must be 0x{expected:X}, got 0x{flags:X}"
        )


def expect_end(buf: memoryview, pos: int, packet: str) -> None:
    """The packet body must be used up exactly; trailing bytes are malformed."""
    if pos != len(buf):
        raise MalformedPacket(f"[MQTT-2.1.4] {len(buf) - pos} trailing bytes in {packet}")
