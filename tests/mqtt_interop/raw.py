"""A raw MQTT client (plain TCP or mTLS socket) speaking through lantern's codec, for tests
that need exact packets: packet ids, DUP, topic aliases, acknowledgements withheld."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from typing import Any, TypeVar

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionRequest,
    Will,
)
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode
from mqtt_interop.harness import QUIET, WAIT, ClientFiles

P = TypeVar("P")


# -- raw client --------------------------------------------------------------------------


class ConnectionClosed(AssertionError):
    """The server closed the connection while we waited for a packet."""


class RawClient:
    """A socket (plain or mTLS) speaking MQTT through lantern's codec, for exact packets."""

    def __init__(self, sock: socket.socket, level: int) -> None:
        self.sock = sock
        self.level = level
        self.decoder = Decoder(1 << 22, protocol_level=level, expect_connect=False)
        self.closed = False

    @classmethod
    def open(cls, port: int, level: int = 5, files: ClientFiles | None = None) -> RawClient:
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        if files is not None:
            ctx = ssl.create_default_context(cafile=str(files.ca))
            ctx.load_cert_chain(str(files.cert), str(files.key))
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        return cls(sock, level)

    def send(self, packet: Packet) -> None:
        self.sock.sendall(encode(packet, self.level))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float = WAIT) -> Packet:
        """The next packet; ConnectionClosed if the server closes first, TimeoutError if none."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self.decoder.next_packet()
            if packet is not None:
                return packet
            if self.closed:
                raise ConnectionClosed("server closed the connection")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no packet within {timeout} s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no packet within {timeout} s") from None
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
            else:
                self.decoder.feed(chunk)

    def expect(self, kind: type[P], timeout: float = WAIT) -> P:
        packet = self.recv(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet}"
        return packet

    def nothing_for(self, timeout: float = QUIET) -> None:
        """Assert that no packet arrives (and the connection stays open) for ``timeout``."""
        try:
            packet = self.recv(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {packet}")

    def until_closed(self, timeout: float = WAIT) -> list[Packet]:
        """Every packet the server sends until it closes the connection."""
        packets: list[Packet] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                packets.append(self.recv(max(deadline - time.monotonic(), 0.001)))
            except ConnectionClosed:
                return packets
            except TimeoutError:
                raise AssertionError(
                    f"server kept the connection open for {timeout} s; got {packets}"
                ) from None

    def connect(
        self,
        client_id: str,
        *,
        clean_start: bool = True,
        keep_alive: int = 60,
        properties: Properties = EMPTY_PROPERTIES,
        will: Will | None = None,
        expect_ok: bool = True,
    ) -> Connack:
        self.send(
            Connect(
                client_id,
                self.level,
                clean_start=clean_start,
                keep_alive=keep_alive,
                will=will,
                properties=properties,
            )
        )
        connack = self.expect(Connack)
        if expect_ok:
            assert connack.reason_code == 0, connack
        return connack

    def subscribe(
        self, topic_filter: str, qos: int = 0, packet_id: int = 1, **options: Any
    ) -> Suback:
        self.send(Subscribe(packet_id, (SubscriptionRequest(topic_filter, qos, **options),)))
        suback = self.expect(Suback)
        assert suback.packet_id == packet_id
        return suback

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        packet_id: int | None = None,
        *,
        retain: bool = False,
        dup: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
        complete: bool = True,
    ) -> None:
        """Send a PUBLISH; with ``complete`` also run its QoS 1 / 2 handshake to the end."""
        self.send(Publish(topic, payload, qos, retain, dup, packet_id, properties))
        if not complete or qos == 0:
            return
        assert packet_id is not None
        if qos == 1:
            ack = self.expect(Puback)
            assert (ack.packet_id, ack.reason_code) == (packet_id, 0), ack
        else:
            rec = self.expect(Pubrec)
            assert (rec.packet_id, rec.reason_code) == (packet_id, 0), rec
            self.send(Pubrel(packet_id))
            comp = self.expect(Pubcomp)
            assert (comp.packet_id, comp.reason_code) == (packet_id, 0), comp

    def ack(self, publish: Publish) -> None:
        """Acknowledge a PUBLISH from the server (QoS 1: PUBACK; QoS 2: PUBREC..PUBCOMP)."""
        if publish.qos == 0:
            return
        assert publish.packet_id is not None
        if publish.qos == 1:
            self.send(Puback(publish.packet_id))
        elif publish.qos == 2:
            self.send(Pubrec(publish.packet_id))
            rel = self.expect(Pubrel)
            assert rel.packet_id == publish.packet_id
            self.send(Pubcomp(publish.packet_id))

    def disconnect(self, reason_code: int = 0, properties: Properties = EMPTY_PROPERTIES) -> None:
        self.send(Disconnect(ReasonCode(reason_code), properties))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        self.closed = True

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT (an RST, so the will must follow)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()
