"""Pipelined publish interception: the connection keeps reading while interceptor calls run;
outcomes (PUBACK/PUBREC, routing) are applied in receive order; bounds and close behaviour.

The interceptor below holds every call on an asyncio event per payload, so the test decides in
which order calls complete; it runs on the server's loop thread, the clients in this thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator

import pytest

from lantern.mqtt.hooks import ClientHandle, InboundPublish
from lantern.mqtt.packets import (
    Connack,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
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
from lantern.mqtt.reason_codes import ReasonCode
from support.mqtt_server import WAIT, Client, MQTTTestPKI, RawTLS, ServerThread

INGEST = "$aws/rules/Ingest"


class HeldInterceptor:
    """Holds calls on ``$aws/rules/...`` (then answers SUCCESS: handled, not routed) and on
    ``held/...`` (then answers None: routed); every other topic is routed at once."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.entered: list[bytes] = []  # payloads, in the order calls started
        self.finished: list[bytes] = []
        self.active = 0
        self.max_active = 0
        self.fail: set[bytes] = set()
        self._events: dict[bytes, asyncio.Event] = {}
        self._open = False  # after the test: nothing is held any more

    async def intercept(self, client: ClientHandle, message: InboundPublish) -> ReasonCode | None:
        topic = message.topic
        if not topic.startswith(("$aws/rules/", "held/")):
            return None
        key = message.payload
        with self.cond:
            self.entered.append(key)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.cond.notify_all()
        try:
            if not self._open:
                await self._events.setdefault(key, asyncio.Event()).wait()
        finally:
            with self.cond:
                self.active -= 1
                self.finished.append(key)
                self.cond.notify_all()
        if key in self.fail:
            raise RuntimeError("interceptor bug")
        return ReasonCode.SUCCESS if topic.startswith("$aws/") else None

    def release(self, srv: ServerThread, keys: Iterable[bytes]) -> None:
        keys = list(keys)

        def go() -> None:
            for key in keys:
                self._events.setdefault(key, asyncio.Event()).set()

        srv.call(go)

    def open(self, srv: ServerThread) -> None:
        """Release every call, present and future (teardown of a test that failed)."""

        def go() -> None:
            self._open = True
            for event in self._events.values():
                event.set()

        srv.call(go)

    def wait_entered(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.entered) >= n, WAIT), self.entered

    def wait_finished(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.finished) >= n, WAIT), self.finished


@pytest.fixture
def gate() -> HeldInterceptor:
    return HeldInterceptor()


@pytest.fixture
def make_held(
    make_server: Callable[..., ServerThread], gate: HeldInterceptor
) -> Iterator[Callable[..., ServerThread]]:
    """Servers with the held interceptor; whatever a test left held is released after it."""
    servers: list[ServerThread] = []

    def make(**limits: object) -> ServerThread:
        server = make_server(interceptor=gate, **limits)
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.loop.is_running():
            gate.open(server)


@pytest.fixture
def srv(make_held: Callable[..., ServerThread]) -> ServerThread:
    return make_held()


def raw_client(srv: ServerThread, pki: MQTTTestPKI, client_id: str, **kw: object) -> RawTLS:
    raw = RawTLS.open(srv.port, pki.client(client_id))
    ack = raw.connect(client_id, **kw)  # type: ignore[arg-type]
    assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
    return raw


def read(raw: RawTLS) -> Packet:
    packet = raw.read_packet()
    assert packet is not None, "server closed the connection"
    return packet


def nothing_before_pingresp(raw: RawTLS) -> None:
    """PINGRESP is answered at once; any PUBACK already written would arrive before it."""
    raw.send_packet(Pingreq())
    got = read(raw)
    assert isinstance(got, Pingresp), got


def publish_all(raw: RawTLS, topic: str, payloads: list[bytes], qos: int = 1) -> None:
    data = b"".join(
        Publish(topic, p, qos, packet_id=i + 1 if qos else None).encode(5)
        for i, p in enumerate(payloads)
    )
    raw.send(data)  # all at once, not waiting for any acknowledgement


def test_fifty_publishes_run_concurrently_and_are_acked_in_publish_order(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    raw = raw_client(srv, pki, "dev")
    payloads = [b"obs-%d" % i for i in range(50)]
    publish_all(raw, INGEST, payloads)
    gate.wait_entered(50)  # every call started before any completed
    assert gate.entered == payloads  # started in receive order
    assert gate.max_active == 50
    # Complete all but the first, newest first: none may be acknowledged before the first.
    gate.release(srv, reversed(payloads[1:]))
    gate.wait_finished(49)
    nothing_before_pingresp(raw)
    gate.release(srv, payloads[:1])
    acks = [read(raw) for _ in payloads]
    assert all(isinstance(a, Puback) and a.reason_code == 0 for a in acks)
    assert [a.packet_id for a in acks if isinstance(a, Puback)] == list(range(1, 51))
    raw.close()


def test_interceptor_failure_gets_0x80_for_that_publish_only(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    raw = raw_client(srv, pki, "dev")
    payloads = [b"ok-1", b"bad", b"ok-2"]
    gate.fail.add(b"bad")
    publish_all(raw, INGEST, payloads)
    gate.wait_entered(3)
    gate.release(srv, [b"ok-2", b"bad", b"ok-1"])
    acks = [read(raw) for _ in payloads]
    assert [(a.packet_id, a.reason_code) for a in acks if isinstance(a, Puback)] == [
        (1, ReasonCode.SUCCESS),
        (2, ReasonCode.UNSPECIFIED_ERROR),
        (3, ReasonCode.SUCCESS),
    ]
    nothing_before_pingresp(raw)  # the connection is still served
    raw.close()


def test_receive_maximum_bounds_concurrency_and_overrun_gets_0x93(
    make_held: Callable[..., ServerThread], gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    srv = make_held(receive_maximum=5)
    raw = RawTLS.open(srv.port, pki.client("dev"))
    ack = raw.connect("dev")
    assert isinstance(ack, Connack) and ack.properties.receive_maximum == 5
    payloads = [b"m%d" % i for i in range(5)]
    publish_all(raw, INGEST, payloads)
    gate.wait_entered(5)
    gate.release(srv, payloads[2:])
    gate.wait_finished(3)
    # Five unacknowledged (the first two still in the interceptor): a sixth is one too many.
    raw.send_packet(Publish(INGEST, b"m5", 1, packet_id=6))
    bye = read(raw)
    assert isinstance(bye, Disconnect) and bye.reason_code == ReasonCode.RECEIVE_MAXIMUM_EXCEEDED
    assert raw.read_packet() is None  # closed
    assert gate.max_active == 5 and b"m5" not in gate.entered
    # The calls in progress still complete (their data may be being committed).
    gate.release(srv, payloads[:2])
    gate.wait_finished(5)
    raw.close()


def test_acknowledged_publishes_free_the_window(
    make_held: Callable[..., ServerThread], gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    srv = make_held(receive_maximum=3)
    raw = raw_client(srv, pki, "dev")
    for round_ in range(4):  # 12 publishes through a window of 3, ids reused
        payloads = [b"r%d-%d" % (round_, i) for i in range(3)]
        publish_all(raw, INGEST, payloads)
        gate.wait_entered(3 * round_ + 3)
        gate.release(srv, payloads)
        acks = [read(raw) for _ in payloads]
        assert [a.packet_id for a in acks if isinstance(a, Puback)] == [1, 2, 3]
    assert gate.max_active <= 3
    raw.close()


def test_qos0_flood_stops_reading_beyond_the_window(
    make_held: Callable[..., ServerThread], gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    srv = make_held(receive_maximum=4)
    raw = raw_client(srv, pki, "dev")
    payloads = [b"q%d" % i for i in range(20)]
    publish_all(raw, INGEST, payloads, qos=0)
    raw.send_packet(Pingreq())
    gate.wait_entered(5)  # Receive Maximum + 1 pending, then the server stops taking packets
    raw.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        raw.sock.recv(1)  # the PINGREQ behind them is not read yet
    raw.sock.settimeout(WAIT)
    assert len(gate.entered) == 5
    gate.release(srv, payloads)
    assert isinstance(read(raw), Pingresp)
    gate.wait_finished(20)
    assert gate.entered == payloads and gate.max_active == 5
    raw.close()


def test_normal_publishes_do_not_overtake_pending_ones(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    sub = Client(srv.port, pki.client("sub"), "sub", 5)
    sub.connect()
    sub.subscribe("t/#", 1)
    sub.subscribe("held/#", 1)
    raw = raw_client(srv, pki, "pub")
    raw.send(
        Publish(INGEST, b"A", 1, packet_id=1).encode(5)  # handled by the interceptor
        + Publish("held/x", b"H", 1, packet_id=2).encode(5)  # interceptor says route (later)
        + Publish("t/1", b"B", 1, packet_id=3).encode(5)  # routed as soon as its turn comes
        + Publish("t/1", b"C", 0).encode(5)
    )
    gate.wait_entered(2)
    gate.release(srv, [b"A"])
    gate.wait_finished(1)
    sub.expect_none()  # B and C wait behind H, which may still be routed
    gate.release(srv, [b"H"])
    got = [sub.expect() for _ in range(3)]
    assert [(m.topic, m.payload) for m in got] == [("held/x", b"H"), ("t/1", b"B"), ("t/1", b"C")]
    acks = [read(raw) for _ in range(3)]
    assert [a.packet_id for a in acks if isinstance(a, Puback)] == [1, 2, 3]
    sub.expect_none()  # A was handled, never routed
    raw.close()
    sub.stop()


def test_subscribe_and_pubrel_wait_for_earlier_publishes(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    raw = raw_client(srv, pki, "dev")
    raw.send(
        Publish("held/q2", b"Q2", 2, packet_id=1).encode(5)
        + Publish("held/q1", b"Q1", 1, packet_id=2).encode(5)
        + Subscribe(3, (SubscriptionRequest("held/#", 1),)).encode(5)
        + Publish("held/q2", b"Q2", 2, dup=True, packet_id=1).encode(5)  # a resend
    )
    gate.wait_entered(2)
    gate.release(srv, [b"Q1", b"Q2"])
    got = [read(raw) for _ in range(4)]
    assert [type(p).__name__ for p in got] == ["Pubrec", "Puback", "Suback", "Pubrec"]
    assert isinstance(got[2], Suback) and got[2].reason_codes == (ReasonCode.GRANTED_QOS_1,)
    assert all(p.reason_code == 0 for p in got if isinstance(p, Pubrec | Puback))
    raw.send_packet(Pubrel(1))
    assert read(raw) == Pubcomp(1)
    # The subscription came after both publishes: neither was delivered back; the resend of
    # QoS 2 id 1 was acknowledged without a second interceptor call or routing.
    nothing_before_pingresp(raw)
    assert gate.entered == [b"Q2", b"Q1"]
    raw.close()


def test_client_disconnect_mid_flight(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    sub = Client(srv.port, pki.client("sub"), "sub", 5)
    sub.connect()
    sub.subscribe("held/#", 1)
    sub.subscribe("will/#", 1)
    raw = raw_client(srv, pki, "dev", will=Will("will/dev", b"gone", 1))
    raw.send(
        Publish(INGEST, b"obs", 1, packet_id=1).encode(5)
        + Publish("held/last", b"L", 0).encode(5)
        + Disconnect().encode(5)
    )
    gate.wait_entered(2)
    assert raw.read_packet() is None  # the DISCONNECT closed the connection at once
    assert srv.call(lambda: len(srv.server.handlers)) == 1  # only "sub" is still connected
    gate.release(srv, [b"obs", b"L"])
    gate.wait_finished(2)
    got = sub.expect()  # the publish sent before DISCONNECT is still routed ...
    assert (got.topic, got.payload) == ("held/last", b"L")
    sub.expect_none()  # ... and the will was discarded (normal DISCONNECT)
    sub.stop()
    raw.close()


def test_connection_loss_mid_flight_publishes_will_after_pending_messages(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    sub = Client(srv.port, pki.client("sub"), "sub", 5)
    sub.connect()
    sub.subscribe("status/#", 1)
    sub.subscribe("held/#", 1)
    raw = raw_client(srv, pki, "dev", will=Will("status/dev", b"offline", 1))
    publish_all(raw, "held/status", [b"online"], qos=1)
    gate.wait_entered(1)
    raw.sock.close()  # lost: no DISCONNECT
    sub.expect_none()  # the will waits for the message sent before the loss
    gate.release(srv, [b"online"])
    got = [sub.expect() for _ in range(2)]
    assert [(m.topic, m.payload) for m in got] == [
        ("held/status", b"online"),
        ("status/dev", b"offline"),
    ]
    sub.stop()


def test_server_stop_waits_for_interceptor_calls(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    raw = raw_client(srv, pki, "dev")
    publish_all(raw, INGEST, [b"x", b"y"])
    gate.wait_entered(2)
    stopping = asyncio.run_coroutine_threadsafe(srv.server.stop(), srv.loop)
    bye = read(raw)
    assert isinstance(bye, Disconnect) and bye.reason_code == ReasonCode.SERVER_SHUTTING_DOWN
    assert raw.read_packet() is None  # nothing sent after it: no PUBACK for x or y
    assert not stopping.done()
    gate.release(srv, [b"y", b"x"])
    stopping.result(WAIT)
    assert sorted(gate.finished) == [b"x", b"y"]
    raw.close()


def test_paho_v311_burst_out_of_order_completion(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    dev = Client(srv.port, pki.client("dev"), "dev311", 4)
    dev.paho.max_inflight_messages_set(50)  # paho's default window is 20
    dev.connect()
    payloads = [b"p%d" % i for i in range(50)]
    infos = [dev.publish(INGEST, p, qos=1, wait=False) for p in payloads]
    gate.wait_entered(50)
    assert gate.max_active > 1
    gate.release(srv, payloads[1::2])  # odd ones first
    gate.release(srv, payloads[0::2])
    for info in infos:
        info.wait_for_publish(WAIT)
    assert all(info.is_published() for info in infos)
    assert sorted(gate.finished) == sorted(payloads)
    dev.stop()


def test_v311_server_failure_is_never_acknowledged_and_the_client_resends(
    srv: ServerThread, gate: HeldInterceptor, pki: MQTTTestPKI
) -> None:
    """3.1.1 has no negative PUBACK: a message the server failed to handle (e.g. a failed
    commit) must not be acknowledged; the connection closes and the persistent session's client
    resends it, this time successfully."""
    raw = RawTLS.open(srv.port, pki.client("dev"))
    ack = raw.connect("dev", 4, clean_start=False)
    assert isinstance(ack, Connack) and ack.reason_code == ReasonCode.SUCCESS
    gate.fail.add(b"bad")
    raw.send(
        Publish(INGEST, b"good", 1, packet_id=1).encode(4)
        + Publish(INGEST, b"bad", 1, packet_id=2).encode(4)
    )
    gate.wait_entered(2)
    gate.release(srv, [b"good", b"bad"])
    first = raw.read_packet(4)
    assert isinstance(first, Puback) and first.packet_id == 1
    assert raw.read_packet(4) is None  # closed without acknowledging packet 2
    raw.close()

    gate.fail.clear()
    again = RawTLS.open(srv.port, pki.client("dev"))
    ack = again.connect("dev", 4, clean_start=False)
    assert isinstance(ack, Connack) and ack.session_present
    again.send_packet(Publish(INGEST, b"bad", 1, dup=True, packet_id=2), 4)
    gate.wait_entered(3)
    gate.release(srv, [b"bad"])
    resent = again.read_packet(4)
    assert isinstance(resent, Puback) and resent.packet_id == 2
    again.close()
