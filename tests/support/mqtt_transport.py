"""Helpers for the transport tests: a recording/echo receiver, blocking TLS clients, a tiny
MQTT responder (enough for paho-mqtt to connect, subscribe and get its publishes back)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from lantern.mqtt.transport import ByteStream, Listener
from lantern.pki import CertificateAuthority, KeyType

#: The ``serve`` fixture: ``await serve(kind, factory, **listener_kwargs) -> Listener``.
Serve = Callable[..., Awaitable[Listener]]


class Recorder:
    """A StreamReceiver that records everything; optionally echoes or runs a hook on data."""

    def __init__(self, on_data: Callable[[Recorder, bytes], None] | None = None) -> None:
        self.on_data = on_data
        self.stream: ByteStream | None = None
        self.data = bytearray()
        self.peer_cert_at_open: bytes | None = None
        self.chain_at_open: tuple[bytes, ...] = ()
        self.alpn_at_open: str | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_calls: list[BaseException | None] = []
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()
        self.got_data = asyncio.Event()

    def stream_opened(self, stream: ByteStream) -> None:
        self.stream = stream
        self.peer_cert_at_open = stream.peer_cert_der
        self.chain_at_open = stream.peer_chain_der
        self.alpn_at_open = stream.alpn_protocol
        self.opened.set()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got_data.set()
        if self.on_data is not None:
            self.on_data(self, data)

    def stream_closed(self, exc: BaseException | None) -> None:
        self.close_calls.append(exc)
        self.closed.set()

    def pause_writing(self) -> None:
        self.paused.set()

    def resume_writing(self) -> None:
        self.resumed.set()

    async def wait_for_bytes(self, n: int, timeout: float = 10.0) -> bytes:
        async with asyncio.timeout(timeout):
            while len(self.data) < n:
                self.got_data.clear()
                await self.got_data.wait()
        return bytes(self.data)


def echo(rec: Recorder, data: bytes) -> None:
    assert rec.stream is not None
    rec.stream.write(data)


class Factory:
    """A ReceiverFactory that keeps the receivers it made."""

    def __init__(self, on_data: Callable[[Recorder, bytes], None] | None = None) -> None:
        self.on_data = on_data
        self.made: list[Recorder] = []
        self.made_event = asyncio.Event()

    def __call__(self) -> Recorder:
        rec = Recorder(self.on_data)
        self.made.append(rec)
        self.made_event.set()
        return rec

    async def next(self, count: int = 1, timeout: float = 10.0) -> Recorder:
        """The ``count``-th receiver, once it exists and is open."""
        async with asyncio.timeout(timeout):
            while len(self.made) < count:
                self.made_event.clear()
                await self.made_event.wait()
            rec = self.made[count - 1]
            await rec.opened.wait()
        return rec


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition the event loop changes (checked every few ms)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@dataclass
class Pki:
    """A temporary platform CA, a device certificate from it and one from an unrelated CA."""

    ca: CertificateAuthority
    client_cert: Path
    client_key: Path
    client_der: bytes
    foreign_cert: Path
    foreign_key: Path

    def client_context(
        self, *, cert: bool = True, foreign: bool = False, alpn: list[str] | None = None
    ) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.ca_file))
        if foreign:
            ctx.load_cert_chain(self.foreign_cert, self.foreign_key)
        elif cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


def make_pki(root: Path) -> Pki:
    ca, _ = CertificateAuthority.load_or_create(root / "ca")
    other, _ = CertificateAuthority.load_or_create(root / "other-ca")
    files = []
    for name, authority in (("device", ca), ("foreign", other)):
        issued = authority.issue(f"{name}-1", KeyType.EC_P256)
        cert, key = root / f"{name}.pem", root / f"{name}.key"
        cert.write_text(issued.certificate_pem)
        key.write_text(issued.private_key_pem)
        files.append((cert, key, issued.certificate))
    from cryptography.hazmat.primitives.serialization import Encoding

    der = files[0][2].public_bytes(Encoding.DER)
    return Pki(ca, files[0][0], files[0][1], der, files[1][0], files[1][1])


def tls_connect(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(65536, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def recv_until_closed(sock: socket.socket, limit: int = 1 << 26) -> tuple[bytes, str]:
    """Read until EOF; returns the data and how it ended ("eof", "reset", "tls-error")."""
    out = bytearray()
    while len(out) < limit:
        try:
            chunk = sock.recv(65536)
        except ssl.SSLError:
            return bytes(out), "tls-error"
        except ConnectionResetError:
            return bytes(out), "reset"
        if not chunk:
            return bytes(out), "eof"
        out += chunk
    return bytes(out), "limit"


def refused(sock_factory: Callable[[], socket.socket]) -> bool:
    """True if the server refused: the handshake failed or the first read shows a close."""
    try:
        sock = sock_factory()
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True
    with sock:
        try:
            sock.sendall(b"\xc0\x00")
            return sock.recv(16) == b""
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return True


def mini_mqtt(rec: Recorder, data: bytes) -> None:
    """Answer CONNECT, SUBSCRIBE and PINGREQ; send every PUBLISH (QoS 0) back (no parsing of
    properties: MQTT 3.1.1 only). Enough for paho-mqtt to connect, subscribe and receive."""
    assert rec.stream is not None
    buf = rec.data
    while len(buf) >= 2:
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return
            byte = buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        if len(buf) < i + length:
            return
        packet = bytes(buf[: i + length])
        del buf[: i + length]
        kind = packet[0] >> 4
        if kind == 1:
            rec.stream.write(b"\x20\x02\x00\x00")
        elif kind == 8:
            rec.stream.write(b"\x90\x03" + packet[i : i + 2] + b"\x00")
        elif kind == 12:
            rec.stream.write(b"\xd0\x00")
        elif kind == 3:
            rec.stream.write(packet)
        elif kind == 14:
            rec.stream.close()


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds
