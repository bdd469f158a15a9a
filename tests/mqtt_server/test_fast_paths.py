"""The per-message fast paths keep the protocol's meaning.

* An interceptor call is started eagerly: one that answers without awaiting needs no task,
  runs in a context of its own, and a synchronous failure costs only that PUBLISH (0x80).
* A PUBLISH is forwarded as the bytes it arrived in only when they are what a fresh encoding
  would be: DUP and retain are never carried over, each recipient gets its own packet id.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from lantern.mqtt.hooks import ClientHandle, InboundPublish
from lantern.mqtt.packets import (
    Connack,
    Packet,
    Puback,
    Publish,
    Suback,
    Subscribe,
    SubscriptionRequest,
)
from lantern.mqtt.reason_codes import ReasonCode
from support.mqtt_server import MQTTTestPKI, RawTLS, ServerThread

_seen: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("_seen", default=None)


class SyncInterceptor:
    """Answers without awaiting: ``bad/`` raises, ``mine/`` is handled, the rest is routed.
    Records what the context variable held when each call began (a leak would show it)."""

    def __init__(self) -> None:
        self.seen_before: list[bytes | None] = []

    async def intercept(self, client: ClientHandle, message: InboundPublish) -> ReasonCode | None:
        self.seen_before.append(_seen.get())
        _seen.set(message.payload)
        if message.topic.startswith("bad/"):
            raise RuntimeError("interceptor bug")
        if message.topic.startswith("mine/"):
            return ReasonCode.SUCCESS
        return None


def connected(srv: ServerThread, pki: MQTTTestPKI, client_id: str, level: int) -> RawTLS:
    raw = RawTLS.open(srv.port, pki.client(client_id))
    ack = raw.connect(client_id, level=level)
    assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
    return raw


def read(raw: RawTLS, level: int) -> Packet:
    packet = raw.read_packet(level)
    assert packet is not None, "server closed the connection"
    return packet


def subscribed(
    srv: ServerThread, pki: MQTTTestPKI, client_id: str, level: int, topic: str, qos: int
) -> RawTLS:
    raw = connected(srv, pki, client_id, level)
    raw.send_packet(Subscribe(1, (SubscriptionRequest(topic, qos),)), level)
    assert isinstance(read(raw, level), Suback)
    return raw


def test_interceptor_answering_at_once_needs_no_task_and_keeps_its_context(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    gate = SyncInterceptor()
    srv = make_server(interceptor=gate)
    sub = subscribed(srv, pki, "sub", 5, "t/#", 1)
    pub = connected(srv, pki, "pub", 5)
    pub.send(
        Publish("t/1", b"A", 1, packet_id=1).encode(5)
        + Publish("mine/x", b"M", 1, packet_id=2).encode(5)
        + Publish("bad/x", b"X", 1, packet_id=3).encode(5)
        + Publish("t/2", b"B", 1, packet_id=4).encode(5)
    )
    acks = [read(pub, 5) for _ in range(4)]
    assert [(a.packet_id, a.reason_code) for a in acks if isinstance(a, Puback)] == [
        (1, ReasonCode.SUCCESS),
        (2, ReasonCode.SUCCESS),
        (3, ReasonCode.UNSPECIFIED_ERROR),
        (4, ReasonCode.SUCCESS),
    ]
    got = [read(sub, 5) for _ in range(2)]
    assert [(p.topic, p.payload) for p in got if isinstance(p, Publish)] == [
        ("t/1", b"A"),
        ("t/2", b"B"),
    ]
    assert gate.seen_before == [None, None, None, None]  # each call had a context of its own
    assert srv.call(lambda: len(srv.server.intercepting)) == 0
    pub.close()
    sub.close()


def test_forwarded_publish_drops_dup_and_retain_and_gets_the_recipients_packet_id(
    server: ServerThread, pki: MQTTTestPKI
) -> None:
    sub = subscribed(server, pki, "sub", 4, "t/#", 1)
    sub.send_packet(Publish("t/warm", b"w", 1, packet_id=7), 4)  # the sub uses id 1 itself
    assert isinstance(read(sub, 4), Puback)
    assert isinstance(read(sub, 4), Publish)  # its own message comes back (3.1.1: no No Local)
    pub = connected(server, pki, "pub", 4)
    pub.send(
        Publish("t/a", b"dup", 1, dup=True, packet_id=300).encode(4)
        + Publish("t/b", b"retained", 1, retain=True, packet_id=301).encode(4)
        + Publish("t/c", b"plain", 1, packet_id=302).encode(4)
        + Publish("t/d", b"qos0", 0).encode(4)
    )
    got = [read(sub, 4) for _ in range(4)]
    assert all(isinstance(p, Publish) for p in got)
    publishes = [p for p in got if isinstance(p, Publish)]
    assert [(p.topic, p.payload, p.qos, p.dup, p.retain) for p in publishes] == [
        ("t/a", b"dup", 1, False, False),
        ("t/b", b"retained", 1, False, False),  # live delivery on 3.1.1: retain 0
        ("t/c", b"plain", 1, False, False),
        ("t/d", b"qos0", 0, False, False),
    ]
    ids = [p.packet_id for p in publishes]
    assert ids[3] is None and len(set(ids[:3])) == 3 and not {300, 301, 302} & set(ids[:3])
    pub.close()
    sub.close()


def test_forwarded_publish_to_a_lower_qos_or_other_level_is_re_encoded(
    server: ServerThread, pki: MQTTTestPKI
) -> None:
    v4_qos0 = subscribed(server, pki, "sub4", 4, "t/#", 0)
    v5_qos1 = subscribed(server, pki, "sub5", 5, "t/#", 1)
    pub = connected(server, pki, "pub", 4)
    pub.send(Publish("t/x", b"payload", 1, packet_id=9).encode(4))
    assert isinstance(read(pub, 4), Puback)
    low = read(v4_qos0, 4)
    assert isinstance(low, Publish) and (low.qos, low.packet_id, low.payload) == (
        0,
        None,
        b"payload",
    )
    other = read(v5_qos1, 5)
    assert isinstance(other, Publish) and (other.qos, other.payload) == (1, b"payload")
    assert other.packet_id is not None
    pub.close()
    v4_qos0.close()
    v5_qos1.close()
