"""An application message as the broker routes it, and its per-recipient wire encoding.

A :class:`Message` is created once per inbound PUBLISH (or server publish, or will) and shared by
every recipient. Its encoded PUBLISH bytes are computed once per (protocol level, QoS, retain
flag, subscription identifiers) and reused: for QoS > 0 the packet identifier is patched into
a copy of the cached bytes at :attr:`EncodedPublish.pid_offset`. Messages with a Message Expiry
Interval are re-encoded per delivery, because the interval sent must be the time left
([MQTT-3.3.2-6]).
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace

from lantern.mqtt.packets import Publish
from lantern.mqtt.primitives import MQTT5, encode_utf8, fixed_header
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties

__all__ = ["EncodedPublish", "Message"]

_PACKET_ID = struct.Struct("!H").pack
_CACHE_LIMIT = 16  # distinct encodings kept per message (levels x QoS x retain x sub ids)


class EncodedPublish:
    """PUBLISH bytes with packet identifier 0 (QoS > 0) and where to patch it."""

    __slots__ = ("_head", "_tail", "data", "pid_offset")

    def __init__(self, data: bytes, pid_offset: int) -> None:
        self.data = data
        self.pid_offset = pid_offset  # 0 when QoS 0 (no packet identifier)
        # The bytes before and after the packet identifier, cut once for all recipients (the
        # tail is a view: a copy would hold the payload a second time per message).
        self._head: bytes | None = None
        self._tail: bytes | memoryview = b""

    def with_packet_id(self, packet_id: int, dup: bool) -> bytes:
        """The bytes to send for ``packet_id`` (QoS > 0), with DUP set if ``dup``."""
        head = self._head
        if head is None:
            off = self.pid_offset
            head = self._head = self.data[:off]
            self._tail = memoryview(self.data)[off + 2 :]
        if dup:
            head = bytes((head[0] | 0x08,)) + head[1:]
        return head + _PACKET_ID(packet_id) + self._tail


class Message:
    """One application message. Immutable once created, apart from its encoding cache.

    ``expires_at`` is the monotonic deadline from the Message Expiry Interval (None = never).
    ``sender`` is the publishing client id (None for the server itself), used for No Local.
    ``size`` (payload + topic length) is what a session holding it is charged, in bytes.
    """

    __slots__ = (
        "_cache",
        "expires_at",
        "payload",
        "properties",
        "qos",
        "retain",
        "sender",
        "size",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
        *,
        sender: str | None = None,
        now: float = 0.0,
    ) -> None:
        if properties is not EMPTY_PROPERTIES:
            if properties.topic_alias is not None:
                # A topic alias belongs to the inbound connection; it is never forwarded.
                properties = replace(properties, topic_alias=None)
            if properties.subscription_identifiers:
                properties = replace(properties, subscription_identifiers=())
            if properties == EMPTY_PROPERTIES:
                properties = EMPTY_PROPERTIES  # so that encoding takes the short path
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.sender = sender
        self.size = len(payload) + len(topic)
        expiry = properties.message_expiry_interval
        self.expires_at: float | None = None if expiry is None else now + expiry
        self._cache: dict[tuple[int, int, bool, tuple[int, ...]], EncodedPublish] | None = None

    def prime(self, protocol_level: int, raw: bytes, payload_size: int) -> None:
        """Seed the encoding cache with the PUBLISH as the publisher sent it, at its level and
        QoS, so that recipients with the same ones get those bytes without re-encoding.

        Only for a PUBLISH without retain, DUP or properties (the caller checks): then those
        bytes are what :meth:`encoded` would produce, apart from the packet identifier, which
        is patched per recipient anyway."""
        qos = self.qos
        pid_offset = 0
        if qos:
            pid_offset = len(raw) - payload_size - (3 if protocol_level == MQTT5 else 2)
        self._cache = {(protocol_level, qos, False, ()): EncodedPublish(raw, pid_offset)}

    def restamped(self, now: float) -> Message:
        """A copy whose expiry counts from ``now`` (a will is created at CONNECT but its
        Message Expiry Interval starts when it is published)."""
        return Message(
            self.topic,
            self.payload,
            self.qos,
            self.retain,
            self.properties,
            sender=self.sender,
            now=now,
        )

    def expired(self, now: float) -> bool:
        expires_at = self.expires_at
        return expires_at is not None and expires_at <= now

    def encoded(
        self, protocol_level: int, qos: int, retain: bool, sub_ids: tuple[int, ...], now: float
    ) -> EncodedPublish:
        """The PUBLISH for one recipient (packet identifier still 0 when QoS > 0)."""
        if protocol_level != MQTT5:
            sub_ids = ()
        if self.expires_at is not None and protocol_level == MQTT5:
            return self._encode(protocol_level, qos, retain, sub_ids, now)
        key = (protocol_level, qos, retain, sub_ids)
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        else:
            hit = cache.get(key)
            if hit is not None:
                return hit
        enc = self._encode(protocol_level, qos, retain, sub_ids, now)
        if len(cache) < _CACHE_LIMIT:
            cache[key] = enc
        return enc

    def properties_for(self, sub_ids: tuple[int, ...], now: float) -> Properties:
        """Properties as sent to one recipient: its subscription ids, the expiry time left."""
        props = self.properties
        if self.expires_at is not None:
            # Rounded to the millisecond first: now + 300 - now may be 300.00000000003.
            left = max(1, math.ceil(round(self.expires_at - now, 3)))
            props = replace(props, message_expiry_interval=left)
        if sub_ids:
            props = replace(props, subscription_identifiers=sub_ids)
        return props

    def _encode(
        self, protocol_level: int, qos: int, retain: bool, sub_ids: tuple[int, ...], now: float
    ) -> EncodedPublish:
        props = self.properties_for(sub_ids, now) if protocol_level == MQTT5 else EMPTY_PROPERTIES
        if props is EMPTY_PROPERTIES:
            # The common case, joined directly: no Publish object, no property encoder.
            topic = encode_utf8(self.topic)
            payload = self.payload
            prop_block = b"\x00" if protocol_level == MQTT5 else b""
            pid = b"\x00\x00" if qos else b""
            fixed = fixed_header(
                0x30 | qos << 1 | retain, len(topic) + len(pid) + len(prop_block) + len(payload)
            )
            data = b"".join((fixed, topic, pid, prop_block, payload))
            return EncodedPublish(data, len(fixed) + len(topic) if qos else 0)
        packet = Publish(self.topic, self.payload, qos, retain, False, 1 if qos else None, props)
        data = packet.encode(protocol_level)
        if not qos:
            return EncodedPublish(data, 0)
        header = 2
        while data[header - 1] & 0x80:
            header += 1
        return EncodedPublish(data, header + 2 + len(self.topic.encode()))
