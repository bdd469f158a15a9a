"""A message as it travels between nodes: everything delivery needs, in one byte string.

Layout (big endian): version (1 byte), flags (QoS in bits 0-1, retain bit 2, sender present
bit 3), the origin node's sequence number (u64), the wall-clock publish time (f64), the origin
node id (u8 length + UTF-8), the sender client id if any (u16 length + UTF-8), the topic (u16
length + UTF-8), the MQTT 5 PUBLISH property block (payload format, message expiry as the
seconds left when sent, content type, response topic, correlation data, user properties), and
the payload (the rest). ``(origin, seq)`` identifies a message cluster-wide.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import replace
from typing import NamedTuple

from lantern.mqtt.broker import Message
from lantern.mqtt.properties import (
    EMPTY_PROPERTIES,
    PUBLISH_PROPS,
    decode_properties,
    encode_properties,
)

__all__ = ["Envelope", "EnvelopeError", "decode", "encode"]

_VERSION = 1
_HEAD = struct.Struct("!BBQd")
_U16 = struct.Struct("!H")


class EnvelopeError(ValueError):
    """Bytes that are not an envelope of this version."""


class Envelope(NamedTuple):  # a tuple: built for every message received, cheaply
    origin: str
    seq: int
    published_at: float  # wall clock
    message: Message


def encode(message: Message, origin: str, seq: int, now: float, wall: float | None = None) -> bytes:
    """``now`` is the loop's (monotonic) time, to send the expiry time left."""
    sender = message.sender
    flags = message.qos | (4 if message.retain else 0) | (8 if sender is not None else 0)
    parts = [
        _HEAD.pack(_VERSION, flags, seq, time.time() if wall is None else wall),
        _short(origin.encode(), 1),
    ]
    if sender is not None:
        parts.append(_short(sender.encode(), 2))
    parts.append(_short(message.topic.encode(), 2))
    props = message.properties
    if message.expires_at is not None:
        left = max(1, math.ceil(round(message.expires_at - now, 3)))  # float noise: see Message
        props = replace(props, message_expiry_interval=left)
    parts.append(encode_properties(props))
    parts.append(message.payload)
    return b"".join(parts)


def _short(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def decode(data: bytes, now: float, *, age: float = 0.0) -> Envelope:
    """The envelope in ``data``; its message's expiry counts from ``now`` minus ``age`` seconds
    already spent (a retained message read later)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        version, flags, seq, published_at = _HEAD.unpack_from(data)
        if version != _VERSION:
            raise EnvelopeError(f"envelope version {version}, expected {_VERSION}")
        pos = _HEAD.size
        n = data[pos]
        origin = data[pos + 1 : pos + 1 + n].decode()
        pos += 1 + n
        sender = None
        if flags & 8:
            n = _U16.unpack_from(data, pos)[0]
            sender = data[pos + 2 : pos + 2 + n].decode()
            pos += 2 + n
        n = _U16.unpack_from(data, pos)[0]
        topic = data[pos + 2 : pos + 2 + n].decode()
        pos += 2 + n
        if data[pos] == 0:  # no properties: the usual case
            props = EMPTY_PROPERTIES
            pos += 1
        else:
            props, pos = decode_properties(memoryview(data), pos, PUBLISH_PROPS, "envelope")
        payload = data[pos:]
    except EnvelopeError:
        raise
    except Exception as exc:  # truncated or garbled
        raise EnvelopeError(f"not a message envelope: {exc}") from exc
    message = Message(
        topic, payload, flags & 3, bool(flags & 4), props, sender=sender, now=now - age
    )
    return Envelope(origin, seq, published_at, message)
