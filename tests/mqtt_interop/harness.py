"""Interop harness: an in-process MQTTServer on its own loop thread and paho-mqtt 2.x clients
(MQTT 3.1.1 and 5.0, callback API v2). The raw codec-level client is in ``raw.py``.

Everything synchronises on queues with timeouts. ``nothing_for`` / ``expect_none`` are the only
bounded waits, used to prove that something does NOT arrive.

The PKI, the server's loop thread and the paho property helpers are those of
``support.mqtt_server`` (the MQTT server's own tests); only what interop needs on top is here.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from lantern.mqtt.hooks import Authorizer, ClientHandle
from lantern.mqtt.server import MQTTServerConfig
from support import mqtt_server
from support.mqtt_server import WAIT, ClientFiles
from support.mqtt_server import props as paho_props
from support.mqtt_server import reason_value as rc_value

__all__ = ["WAIT", "ClientFiles", "InteropPKI", "paho_props", "rc_value"]  # re-exported for tests

# A temporary platform CA (with its server certificate) and client certificates.
InteropPKI = mqtt_server.MQTTTestPKI

QUIET = 0.2  # how long we watch to prove that something does not arrive

# The paho interop suite's topic set (client_test.py / client_test5.py).
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE = "test/nosubscribe"


# -- hooks -------------------------------------------------------------------------------


class NoSubscribeAuthorizer:
    """Full access except subscribing to ``test/nosubscribe``, the topic the paho suite expects
    a broker to refuse."""

    def may_publish(self, client: ClientHandle, topic: str) -> bool:
        return True

    def may_subscribe(self, client: ClientHandle, topic_filter: str) -> bool:
        return topic_filter != NOSUBSCRIBE

    def may_receive(self, client: ClientHandle, topic: str) -> bool:
        return True


# -- server ------------------------------------------------------------------------------


class ServerThread(mqtt_server.ServerThread):
    """An MQTTServer with a plain TCP listener (and optionally mTLS / WebSocket) on port 0,
    running on its own event loop in a daemon thread."""

    run_timeout = WAIT * 2

    def __init__(
        self,
        pki: InteropPKI,
        *,
        tls: bool = False,
        ws: bool = False,
        authorizer: Authorizer | None = None,
        **config: Any,
    ) -> None:
        files: dict[str, Any] = {}
        if tls:
            files = {
                "cert_file": pki.ca.server_cert_file,
                "key_file": pki.ca.server_key_file,
                "ca_file": pki.ca.ca_file,
            }
        server_config = MQTTServerConfig(
            host="127.0.0.1",
            tcp_port=0,
            tls_port=0 if tls else None,
            ws_port=0 if ws else None,
            **files,
            **config,
        )
        self._serve(server_config, authorizer=authorizer)

    @property
    def tcp_port(self) -> int:
        return self.server.ports["tcp"]

    @property
    def tls_port(self) -> int:
        return self.server.ports["mqtts"]

    @property
    def ws_port(self) -> int:
        return self.server.ports["ws"]


# -- paho client -------------------------------------------------------------------------


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    properties: Any  # paho Properties or None


@dataclass
class Connected:
    reason: int
    session_present: bool
    properties: Any


@dataclass
class PahoClient:
    """A paho-mqtt 2.x client with blocking helpers that wait on callbacks."""

    port: int
    client_id: str = ""
    version: int = 5
    clean_session: bool = True  # 3.1.1 only
    files: ClientFiles | None = None
    transport: str = "tcp"
    messages: queue.Queue[Message] = field(default_factory=queue.Queue)
    connacks: queue.Queue[Connected] = field(default_factory=queue.Queue)
    disconnects: queue.Queue[int] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.version == 4:
            kwargs["clean_session"] = self.clean_session
        self.paho = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if self.version == 5 else paho.MQTTv311,
            transport=self.transport,  # type: ignore[arg-type]
            **kwargs,
        )
        if self.transport == "websockets":
            self.paho.ws_set_options(path="/mqtt")
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
        self._started = False

    # callbacks run on paho's network thread
    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connacks.put(Connected(rc_value(rc), bool(flags.session_present), props))

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        self.messages.put(
            Message(
                msg.topic,
                msg.payload,
                msg.qos,
                bool(msg.retain),
                bool(msg.dup),
                msg.mid,
                getattr(msg, "properties", None),
            )
        )

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
        self.disconnects.put(rc_value(rc))

    def _queue(self, mid: int) -> queue.Queue[Any]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def _on_ack(self, _c: Any, _u: Any, mid: int, rcs: Any, _props: Any) -> None:
        self._queue(mid).put([rc_value(rc) for rc in rcs])

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _props: Any) -> None:
        self._queue(mid).put(rc_value(rc))

    # blocking helpers
    def connect(
        self,
        *,
        clean_start: bool = True,
        keepalive: int = 60,
        properties: PahoProperties | None = None,
        expect_ok: bool = True,
    ) -> Connected:
        kwargs: dict[str, Any] = {"keepalive": keepalive}
        if self.version == 5:
            kwargs["clean_start"] = clean_start
            kwargs["properties"] = properties
        self.paho.connect("127.0.0.1", self.port, **kwargs)
        if not self._started:
            self.paho.loop_start()
            self._started = True
        connack = self.connacks.get(timeout=WAIT)
        if expect_ok:
            assert connack.reason == 0, f"CONNACK refused: {connack}"
        return connack

    def will_set(self, topic: str, payload: bytes, qos: int = 0, **props: Any) -> None:
        properties = paho_props(PacketTypes.WILLMESSAGE, **props) if props else None
        self.paho.will_set(topic, payload, qos, False, properties)

    def subscribe(
        self,
        topic: str,
        qos: int = 0,
        *,
        sub_id: int | None = None,
        **options: Any,
    ) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its reason codes / granted QoS."""
        if self.version == 5:
            props = (
                paho_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id)
                if sub_id is not None
                else None
            )
            rc, mid = self.paho.subscribe(
                topic, options=SubscribeOptions(qos=qos, **options), properties=props
            )
        else:
            rc, mid = self.paho.subscribe(topic, qos)
        assert rc == paho.MQTT_ERR_SUCCESS
        codes: list[int] = self._queue(mid).get(timeout=WAIT)
        return codes

    def unsubscribe(self, topic: str) -> list[int]:
        rc, mid = self.paho.unsubscribe(topic)
        assert rc == paho.MQTT_ERR_SUCCESS
        codes: list[int] = self._queue(mid).get(timeout=WAIT)
        return codes

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        **props: Any,
    ) -> int:
        """Publish and wait until paho reports it done (PUBACK / PUBCOMP for QoS 1 / 2)."""
        properties = paho_props(PacketTypes.PUBLISH, **props) if props else None
        info = self.paho.publish(topic, payload, qos, retain, properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, info.rc
        rc: int = self._queue(info.mid).get(timeout=WAIT)
        return rc

    def expect(self, timeout: float = WAIT) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id!r}: no message within {timeout} s") from None

    def expect_n(self, n: int) -> list[Message]:
        return [self.expect() for _ in range(n)]

    def maybe(self, timeout: float = QUIET) -> Message | None:
        """One more message if it arrives within ``timeout`` (for optional behaviour)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def expect_none(self, timeout: float = QUIET) -> None:
        try:
            got = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id!r}: unexpected message {got}")

    def disconnect(self, **props: Any) -> None:
        properties = paho_props(PacketTypes.DISCONNECT, **props) if props else None
        self.paho.disconnect(properties=properties)
        self.disconnects.get(timeout=WAIT)
        self.paho.loop_stop()
        self._started = False

    def stop(self) -> None:
        if self._started:
            self.paho.disconnect()
            self.paho.loop_stop()
            self._started = False
