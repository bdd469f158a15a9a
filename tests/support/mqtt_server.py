"""Test support for the MQTT server: an in-process server on its own loop thread, test
certificates from a temporary CA, a synchronous paho-mqtt client wrapper and a raw TLS client."""

from __future__ import annotations

import asyncio
import queue
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.reasoncodes import ReasonCode as PahoReasonCode

from lantern.mqtt.codec import Decoder, encode
from lantern.mqtt.hooks import (
    AllowAllAuthenticator,
    AllowAllAuthorizer,
    Authenticator,
    Authorizer,
    PublishInterceptor,
)
from lantern.mqtt.packets import Connect, Packet
from lantern.mqtt.server import MQTTServer, MQTTServerConfig
from lantern.pki import CertificateAuthority, KeyType

T = TypeVar("T")
WAIT = 5.0


@dataclass(frozen=True)
class ClientFiles:
    cert: Path
    key: Path
    ca: Path


@dataclass
class MQTTTestPKI:
    """A CA with its server certificate, and client certificates on demand."""

    ca: CertificateAuthority
    directory: Path

    @classmethod
    def create(cls, directory: Path) -> MQTTTestPKI:
        ca, _ = CertificateAuthority.load_or_create(directory / "ca")
        return cls(ca, directory)

    def client(self, name: str) -> ClientFiles:
        cert = self.directory / f"{name}.crt"
        key = self.directory / f"{name}.key"
        if not cert.exists():
            issued = self.ca.issue(name, KeyType.EC_P256)
            cert.write_text(issued.certificate_pem)
            assert issued.private_key_pem is not None
            key.write_text(issued.private_key_pem)
        return ClientFiles(cert, key, self.ca.ca_file)


class ServerThread:
    """An MQTTServer (mTLS listener on port 0 by default) running on its own event loop in a
    daemon thread. Subclasses that listen elsewhere build their own config and call
    :meth:`_serve`."""

    run_timeout = WAIT  # how long run() waits for a coroutine on the server's loop

    def __init__(
        self,
        pki: MQTTTestPKI,
        *,
        authenticator: Authenticator | None = None,
        authorizer: Authorizer | None = None,
        interceptor: PublishInterceptor | None = None,
        **limits: Any,
    ) -> None:
        config = MQTTServerConfig(
            host="127.0.0.1",
            tls_port=0,
            cert_file=pki.ca.server_cert_file,
            key_file=pki.ca.server_key_file,
            ca_file=pki.ca.ca_file,
            **limits,
        )
        self._serve(config, authenticator, authorizer, interceptor)

    def _serve(
        self,
        config: MQTTServerConfig,
        authenticator: Authenticator | None = None,
        authorizer: Authorizer | None = None,
        interceptor: PublishInterceptor | None = None,
    ) -> None:
        """Create the server (allow-all hooks unless given) and the loop thread to run it on."""
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.server = MQTTServer(
            config,
            authenticator if authenticator is not None else AllowAllAuthenticator(),
            authorizer if authorizer is not None else AllowAllAuthorizer(),
            interceptor,
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> Self:
        """Start the loop thread and the server; on failure stop both before raising."""
        self._thread.start()
        try:
            self.run(self.server.start())
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def port(self) -> int:
        return self.server.ports["mqtts"]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.run_timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def stop(self) -> None:
        """Stop the server and its loop thread (the loop stops even if the server's stop fails)."""
        if self.loop.is_running():
            try:
                self.run(self.server.stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(WAIT)
        if not self.loop.is_running():
            self.loop.close()


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    properties: Any


@dataclass
class Client:
    """A paho-mqtt client (MQTT 5 or 3.1.1) with blocking helpers that wait on events."""

    port: int
    files: ClientFiles | None
    client_id: str = ""
    version: int = 5
    clean: bool = True
    messages: queue.Queue[Received] = field(default_factory=queue.Queue)
    connack: queue.Queue[tuple[Any, bool, Any]] = field(default_factory=queue.Queue)
    disconnects: queue.Queue[Any] = field(default_factory=queue.Queue)
    manual_ack: bool = False

    def __post_init__(self) -> None:
        protocol = paho.MQTTv5 if self.version == 5 else paho.MQTTv311
        kwargs: dict[str, Any] = {}
        if self.version != 5:
            kwargs["clean_session"] = self.clean
        self.paho = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            manual_ack=self.manual_ack,
            **kwargs,
        )
        if self.files is not None:
            self.paho.tls_set(
                ca_certs=str(self.files.ca),
                certfile=str(self.files.cert),
                keyfile=str(self.files.key),
            )
        self._acks: dict[int, queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = self._on_message
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_subscribe = self._on_ack
        self.paho.on_unsubscribe = self._on_ack
        self.paho.on_publish = self._on_publish

    # callbacks (paho's thread)
    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack.put((rc, bool(flags.session_present), props))

    def _on_message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        self.messages.put(
            Received(msg.topic, msg.payload, msg.qos, bool(msg.retain), bool(msg.dup), props)
        )

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.disconnects.put(rc)

    def _ack_queue(self, mid: int) -> queue.Queue[Any]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def _on_ack(self, c: Any, u: Any, mid: int, rcs: Any, props: Any) -> None:
        self._ack_queue(mid).put(rcs)

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        self._ack_queue(mid).put(rc)

    # blocking helpers
    def connect(
        self,
        *,
        keepalive: int = 60,
        properties: PahoProperties | None = None,
        clean_start: bool = True,
        expect_ok: bool = True,
    ) -> tuple[Any, bool, Any]:
        kwargs: dict[str, Any] = {"keepalive": keepalive, "properties": properties}
        if self.version == 5:
            kwargs["clean_start"] = clean_start
        self.paho.connect("127.0.0.1", self.port, **kwargs)
        self.paho.loop_start()
        result = self.connack.get(timeout=WAIT)
        if expect_ok:
            assert not result[0].is_failure, result
        return result

    def subscribe(self, topic: str, qos: int = 0, **kw: Any) -> list[Any]:
        if self.version == 5:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            properties = kw.pop("props", None)
            opts = SubscribeOptions(qos=qos, **kw)
            rc, mid = self.paho.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self.paho.subscribe(topic, qos)
        assert rc == paho.MQTT_ERR_SUCCESS
        return list(self._ack_queue(mid).get(timeout=WAIT))

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: PahoProperties | None = None,
        wait: bool = True,
    ) -> Any:
        info = self.paho.publish(topic, payload, qos, retain, properties)
        if not wait:
            return info
        return self._ack_queue(info.mid).get(timeout=WAIT)

    def expect(self, timeout: float = WAIT) -> Received:
        return self.messages.get(timeout=timeout)

    def expect_none(self, timeout: float = 0.3) -> None:
        """Assert nothing arrives (used after a message that proves ordering was sent)."""
        try:
            got = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {got}")

    def disconnect(self, properties: PahoProperties | None = None, reasoncode: Any = None) -> None:
        self.paho.disconnect(reasoncode=reasoncode, properties=properties)
        self.disconnects.get(timeout=WAIT)
        self.paho.loop_stop()

    def kill(self) -> None:
        """Drop the connection without DISCONNECT (the will is published)."""
        sock = self.paho.socket()
        self.paho.loop_stop()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        # disconnect() first: it wakes paho's network thread, so loop_stop() need not wait
        # for its select() timeout.
        self.paho.disconnect()
        self.paho.loop_stop()


def props(packet_type: int, **values: Any) -> PahoProperties:
    """paho Properties; ``UserProperty`` takes a list of pairs."""
    p = PahoProperties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def reason_value(rc: Any) -> int:
    return rc.value if isinstance(rc, PahoReasonCode) else int(rc)


@dataclass
class RawTLS:
    """A raw mTLS socket for malformed bytes."""

    sock: ssl.SSLSocket

    @classmethod
    def open(cls, port: int, files: ClientFiles) -> RawTLS:
        ctx = ssl.create_default_context(cafile=str(files.ca))
        ctx.load_cert_chain(str(files.cert), str(files.key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        return cls(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_all(self) -> bytes:
        """Everything until the server closes (raises on timeout)."""
        chunks = []
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def read_some(self) -> bytes:
        return self.sock.recv(65536)

    def send_packet(self, packet: Packet, level: int = 5) -> None:
        self.sock.sendall(encode(packet, level))

    def read_packet(self, level: int = 5) -> Packet | None:
        """The next packet from the server; None if it closed the connection first."""
        decoder = self.__dict__.setdefault(
            "_decoder", Decoder(1 << 20, protocol_level=level, expect_connect=False)
        )
        while True:
            packet = decoder.next_packet()
            if packet is not None:
                return packet
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                return None
            if not chunk:
                return None
            decoder.feed(chunk)

    def connect(self, client_id: str, level: int = 5, **kw: Any) -> Packet | None:
        self.send_packet(Connect(client_id, level, **kw), level)
        return self.read_packet(level)

    def close(self) -> None:
        self.sock.close()


def drain(q: queue.Queue[T]) -> Iterator[T]:
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return
