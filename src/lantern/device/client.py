"""A small MQTT-over-mTLS device client on paho-mqtt (synchronous, thread-backed)."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

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


class DeviceClient:
    """One MQTT connection authenticated by a client certificate.

    Use as a context manager. :meth:`request` subscribes to ``<topic>/accepted`` and
    ``<topic>/rejected``, publishes, and waits for the answer (the server sends it to this
    connection only).
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
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol
        )
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
        self._subacks: dict[int, queue.Queue[list[Any]]] = {}
        self._pubacks: dict[int, threading.Event] = {}
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._lock = threading.Lock()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._connack = rc
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        with self._lock:
            waiter = self._subacks.get(mid)
        if waiter is not None:
            waiter.put(list(rcs))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._inbox.put((message.topic, message.payload))

    # -- API -----------------------------------------------------------------------------------
    def connect(self) -> DeviceClient:
        try:
            self._client.connect(self.endpoint.host, self.endpoint.port, keepalive=60)
        except (OSError, ssl.SSLError) as exc:
            raise DeviceError(
                f"cannot connect to {self.endpoint.host}:{self.endpoint.port}: {exc}"
            ) from None
        self._client.loop_start()
        if not self._connected.wait(self.timeout):
            self.close()
            raise DeviceError(f"no CONNACK from {self.endpoint.host}:{self.endpoint.port}")
        if self._connack is None or self._connack.is_failure:
            self.close()
            raise DeviceError(f"the server refused the connection: {self._connack}")
        return self

    def __enter__(self) -> DeviceClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe and wait for a successful SUBACK."""
        waiter: queue.Queue[list[Any]] = queue.Queue()
        with self._lock:
            rc, mid = self._client.subscribe(topic_filter, qos)
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                raise DeviceError(f"cannot subscribe to {topic_filter}: {mqtt.error_string(rc)}")
            self._subacks[mid] = waiter
        try:
            codes = waiter.get(timeout=self.timeout)
        except queue.Empty:
            raise DeviceError(f"no SUBACK for {topic_filter}") from None
        finally:
            with self._lock:
                self._subacks.pop(mid, None)
        if any(getattr(c, "is_failure", False) or c == 0x80 for c in codes):
            raise DeviceError(f"the server refused the subscription to {topic_filter}")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self._client.publish(topic, payload, qos)
        info.wait_for_publish(self.timeout)

    def receive(self, topics: Collection[str]) -> tuple[str, bytes]:
        """The next message on one of ``topics`` (messages on other topics are dropped)."""
        while True:
            try:
                got, payload = self._inbox.get(timeout=self.timeout)
            except queue.Empty:
                waited = f"{self.timeout:g} s"
                raise DeviceError(f"no message on {', '.join(topics)} within {waited}") from None
            if got in topics:
                return got, payload

    def request(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        """Publish ``body`` as JSON on ``topic``; return the ``/accepted`` answer or raise
        :class:`RequestRejected`."""
        accepted, rejected = f"{topic}/accepted", f"{topic}/rejected"
        self.subscribe(accepted)
        self.subscribe(rejected)
        self.publish(topic, json.dumps(body).encode())
        while True:
            try:
                got, payload = self._inbox.get(timeout=self.timeout)
            except queue.Empty:
                raise DeviceError(f"no answer to {topic} within {self.timeout:g} s") from None
            if got not in (accepted, rejected):
                continue
            try:
                answer = json.loads(payload)
            except ValueError:
                raise DeviceError(f"the answer on {got} is not JSON") from None
            if got == rejected:
                raise RequestRejected(got, answer)
            return dict(answer)
