"""Encoding and incremental, bounded decoding of MQTT packets (sans-I/O).

``encode(packet, protocol_level)`` turns a packet into bytes. :class:`Decoder` turns a byte
stream into packets: ``feed()`` the bytes you read, then call ``next_packet()`` until it
returns ``None`` (need more data). The maximum packet size is enforced from the fixed header,
before the body is buffered. After a :class:`ProtocolError` the decoder is dead: every later
``next_packet()`` raises the same error (the connection must be closed).
"""

from __future__ import annotations

from lantern.mqtt.errors import (
    LocalProtocolError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    ProtocolViolation,
)
from lantern.mqtt.packets import PACKET_TYPES, Connect, Packet, Publish

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "Decoder", "encode"]

DEFAULT_MAX_PACKET_SIZE = 131072
"""AWS IoT Core's limit: 128 KB per packet, fixed header included."""

_DECODERS = tuple(PACKET_TYPES[t].decode if t in PACKET_TYPES else None for t in range(16))
_CONNECT_TYPE = 1


def encode(packet: Packet, protocol_level: int) -> bytes:
    """Encode ``packet`` for ``protocol_level`` (4 = 3.1.1, 5 = 5.0).

    MQTT 5-only content (properties, reason codes) is dropped at level 4; anything that cannot
    be sent at all raises :class:`LocalProtocolError`.
    """
    return packet.encode(protocol_level)


class Decoder:
    """Incremental decoder for one connection's inbound byte stream.

    Server side (default): the first packet must be CONNECT; its protocol level then applies to
    every later packet (``protocol_level`` attribute). Client/test side:
    ``Decoder(protocol_level=5, expect_connect=False)``.
    """

    __slots__ = ("_buf", "_connected", "_error", "_pos", "max_packet_size", "protocol_level")

    def __init__(
        self,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        *,
        protocol_level: int | None = None,
        expect_connect: bool = True,
    ) -> None:
        if not expect_connect and protocol_level is None:
            raise LocalProtocolError("a decoder that expects no CONNECT needs a protocol_level")
        self.max_packet_size = max_packet_size
        self.protocol_level: int | None = protocol_level
        self._connected = not expect_connect
        # The unread input: b"" when everything was decoded (nothing is held between packets),
        # the received bytes themselves when they were all that was unread (no copy), else a
        # bytearray accumulating a packet that arrives in pieces.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Append received bytes. Ignored once the decoder has failed."""
        if self._error is not None or not data:
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = data if type(data) is bytes else bytes(data)
        elif not pos and isinstance(buf, bytearray):
            # Growing a packet that arrives in pieces. No packet was decoded from this buffer
            # yet (that would have moved pos), so no view of it exists and it may be resized.
            buf += data
        else:
            # Decoded packets may still hold views of the old buffer: start a new one.
            self._buf = bytearray(memoryview(buf)[pos:])
            self._buf += data
        self._pos = 0

    def next_packet(self) -> Packet | None:
        """The next complete packet, or None if more data is needed.

        Raises a :class:`ProtocolError` subclass for anything the peer got wrong.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_packet()
        except ProtocolError as exc:
            self._error = exc
            raise

    def _next_packet(self) -> Packet | None:
        buf = self._buf
        start = self._pos
        size = len(buf)
        if size - start < 2:
            return None
        first = buf[start]
        ptype = first >> 4
        if not self._connected and ptype != _CONNECT_TYPE:
            raise ProtocolViolation(
                f"[MQTT-3.1.0-1] the first packet must be CONNECT, got packet type {ptype}"
            )
        decode = _DECODERS[ptype]
        if decode is None:
            raise MalformedPacket("[MQTT-2.1.2] packet type 0 is reserved")
        remaining = 0
        shift = 0
        i = start + 1
        while True:
            if i >= size:
                return None
            byte = buf[i]
            i += 1
            remaining |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift == 28:
                raise MalformedPacket("[MQTT-1.5.5] remaining length longer than four bytes")
        end = i + remaining
        if end - start > self.max_packet_size:
            raise PacketTooLarge(
                f"[MQTT-3.2.2.3.6] packet of {end - start} bytes exceeds the maximum packet "
                f"size {self.max_packet_size}"
            )
        if end > size:
            return None
        level = self.protocol_level
        # The view is not released explicitly: packets copy what they keep, and feed() never
        # resizes a buffer in place, so a lingering view does no harm (and costs nothing).
        body = memoryview(buf)[i:end]
        if level is None:
            packet: Packet = Connect.decode(first & 0x0F, body)
        else:
            packet = decode(first & 0x0F, body, level)
        if end == size:
            self._buf = b""
            self._pos = 0
        else:
            self._pos = end
        if not self._connected:
            self._connected = True
        if type(packet) is Publish:
            # Kept so that the server can forward it as is (slicing whole bytes copies nothing).
            packet.raw = buf[start:end] if type(buf) is bytes else bytes(buf[start:end])
        elif type(packet) is Connect:
            self.protocol_level = packet.protocol_level
        return packet
