"""A small MQTT-over-mTLS device client on paho-mqtt (synchronous, thread-backed)."""

from __future__ import annotations

import json
import queue
import socket
import ssl
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lantern import jsonlimits
from lantern.device.network import NetworkThread
from lantern.errors import LanternError

__all__ = ["DeviceClient", "DeviceError", "Endpoint", "RequestRejected"]

DEFAULT_PORT = 8883


class DeviceError(LanternError):
    """The device could not do what was asked (connect, subscribe, get a reply)."""


class RequestRejected(DeviceError):
    """The server answered on a ``/rejected`` topic."""

    def __init__(self, topic: str, body: dict[str, Any]) -> None:
        self.topic = topic
        self.body = body
        super().__init__(
            f"{topic}: {body.get('statusCode')} {body.get('errorCode')}: {body.get('errorMessage')}"
        )


@dataclass(frozen=True)
class Endpoint:
    host: str = "localhost"
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``host`` or ``host:port`` (``[v6]:port`` for IPv6)."""
        host, sep, port = text.rpartition(":")
        if not sep or "]" in port:
            return cls(text.strip("[]"), DEFAULT_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise DeviceError(f"invalid endpoint {text!r}: the port must be 1-65535")
        return cls(host.strip("[]"), int(port))


class _Paho(mqtt.Client):
    """paho's client, noting when the TCP connection is up (so a failure names its step)."""

    tcp_connected = False

    def _create_socket_connection(self) -> socket.socket:
        sock = super()._create_socket_connection()
        self.tcp_connected = True
        return sock


_LOST = ("", b"")  # put in the inbox when the connection is gone


class DeviceClient:
    """One MQTT connection authenticated by a client certificate.

    Use as a context manager. :meth:`request` subscribes to ``<topic>/accepted`` and
    ``<topic>/rejected``, publishes, and waits for the answer (the server sends it to this
    connection only). A failure raises :class:`DeviceError` naming the step that failed (TCP
    connection, TLS handshake, CONNACK, a reply); a lost connection fails every wait at once
    (the client does not reconnect). Every descriptor it opens is closed by :meth:`close`.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        ca_file: Path,
        cert_file: Path,
        key_file: Path,
        client_id: str | None = None,
        mqtt5: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.client_id = client_id or f"lantern-device-{uuid.uuid4().hex[:12]}"
        protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
        self._client = _Paho(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        self._client.connect_timeout = timeout  # TCP connect and TLS handshake, each
        try:
            self._client.tls_set(
                ca_certs=str(ca_file),
                certfile=str(cert_file),
                keyfile=str(key_file),
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError) as exc:
            raise DeviceError(f"cannot load the TLS files: {exc}") from None
        self._connected = threading.Event()
        self._connack: Any = None
        self._lost: str | None = None
        self._subacks: dict[int, queue.Queue[list[Any] | None]] = {}
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._lock = threading.Lock()
        self._network: NetworkThread | None = None
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def _address(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._connack = rc
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._lock:
            self._lost = str(rc)
            waiters = list(self._subacks.values())
        for waiter in waiters:
            waiter.put(None)
        self._inbox.put(_LOST)
        self._connected.set()  # a CONNACK wait ends now

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        with self._lock:
            waiter = self._subacks.get(mid)
        if waiter is not None:
            waiter.put(list(rcs))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._inbox.put((message.topic, message.payload))

    def _gone(self, waiting_for: str) -> DeviceError:
        return DeviceError(
            f"connection to {self._address} lost ({self._lost}) waiting for {waiting_for}"
        )

    # -- API -----------------------------------------------------------------------------------
    def connect(self) -> DeviceClient:
        """Open the TCP connection, do the TLS handshake, send CONNECT and wait for CONNACK."""
        client = self._client
        try:
            client.connect(self.endpoint.host, self.endpoint.port, keepalive=60)
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            raise self._connect_failed(exc) from None
        self._network = NetworkThread(client, f"lantern-device-{self.client_id}")
        self._network.start()
        if not self._connected.wait(self.timeout):
            self.close()
            raise DeviceError(
                f"TLS connection to {self._address} is up, but no CONNACK came within "
                f"{self.timeout:g} s: the server did not answer the MQTT CONNECT"
            )
        connack = self._connack
        if connack is None:
            self.close()
            raise DeviceError(
                f"the server closed the connection to {self._address} before CONNACK "
                f"({self._lost}): with TLS 1.3 a refused client certificate shows this way; "
                "check that it was issued by this server's CA and is not revoked"
            )
        if connack.is_failure:
            self.close()
            raise DeviceError(f"the server refused the connection (CONNACK: {connack})")
        return self

    def _connect_failed(self, exc: BaseException) -> DeviceError:
        client = self._client
        sock = client.socket()
        if sock is not None:
            sock.close()
        if not client.tcp_connected:
            return DeviceError(f"cannot open a TCP connection to {self._address}: {exc}")
        reason = getattr(exc, "reason", None) or getattr(exc, "verify_message", None) or exc
        return DeviceError(f"TLS handshake with {self._address} failed: {reason}")

    def __enter__(self) -> DeviceClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Send DISCONNECT (when connected) and close every descriptor of this connection."""
        self._client.disconnect()
        if self._network is not None:
            self._network.stop(timeout=min(self.timeout, 5.0))
            self._network = None

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe and wait for a successful SUBACK."""
        waiter: queue.Queue[list[Any] | None] = queue.Queue()
        with self._lock:
            if self._lost is not None:
                raise self._gone(f"SUBACK for {topic_filter}")
            rc, mid = self._client.subscribe(topic_filter, qos)
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                raise DeviceError(f"cannot subscribe to {topic_filter}: {mqtt.error_string(rc)}")
            self._subacks[mid] = waiter
        try:
            codes = waiter.get(timeout=self.timeout)
        except queue.Empty:
            raise DeviceError(
                f"no SUBACK for {topic_filter} within {self.timeout:g} s from {self._address}"
            ) from None
        finally:
            with self._lock:
                self._subacks.pop(mid, None)
        if codes is None:
            raise self._gone(f"SUBACK for {topic_filter}")
        if any(getattr(c, "is_failure", False) or c == 0x80 for c in codes):
            raise DeviceError(f"the server refused the subscription to {topic_filter}")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and, for QoS 1, wait for the PUBACK."""
        info = self._client.publish(topic, payload, qos)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise DeviceError(f"cannot publish to {topic}: {exc}") from None
        if not info.is_published():
            if self._lost is not None:
                raise self._gone(f"PUBACK for {topic}")
            raise DeviceError(f"no PUBACK for {topic} within {self.timeout:g} s")

    def receive(self, topics: Collection[str]) -> tuple[str, bytes]:
        """The next message on one of ``topics`` (messages on other topics are dropped)."""
        while True:
            got, payload = self._next_message(f"a message on {', '.join(topics)}")
            if got in topics:
                return got, payload

    def _next_message(self, waiting_for: str) -> tuple[str, bytes]:
        try:
            message = self._inbox.get(timeout=self.timeout)
        except queue.Empty:
            raise DeviceError(f"no {waiting_for} within {self.timeout:g} s") from None
        if message is _LOST:
            self._inbox.put(_LOST)  # every later wait fails at once too
            raise self._gone(waiting_for)
        return message

    def request(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        """Publish ``body`` as JSON on ``topic``; return the ``/accepted`` answer or raise
        :class:`RequestRejected`."""
        accepted, rejected = f"{topic}/accepted", f"{topic}/rejected"
        self.subscribe(accepted)
        self.subscribe(rejected)
        self.publish(topic, json.dumps(body).encode())
        while True:
            got, payload = self._next_message(f"answer to {topic}")
            if got not in (accepted, rejected):
                continue
            try:
                answer = jsonlimits.loads(payload)
            except ValueError:
                raise DeviceError(f"the answer on {got} is not JSON") from None
            if got == rejected:
                raise RequestRejected(got, answer)
            return dict(answer)
