"""The plug points: authenticator, authorizer, interceptor, server API, graceful stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from lantern.mqtt.hooks import (
    AuthResult,
    ClientHandle,
    ConnectInfo,
    InboundPublish,
)
from lantern.mqtt.reason_codes import ReasonCode
from support.mqtt_server import Client, MQTTTestPKI, ServerThread, reason_value


class RecordingAuthenticator:
    def __init__(self) -> None:
        self.seen: list[ConnectInfo] = []

    async def authenticate(self, info: ConnectInfo) -> AuthResult:
        self.seen.append(info)
        if info.client_id == "banned":
            return AuthResult(identity=None, reason_code=ReasonCode.BANNED)
        return AuthResult(identity=f"thing:{info.client_id}")


class TopicAuthorizer:
    def may_publish(self, client: ClientHandle, topic: str) -> bool:
        return not topic.startswith("forbidden")

    def may_subscribe(self, client: ClientHandle, topic_filter: str) -> bool:
        return not topic_filter.startswith("forbidden")

    def may_receive(self, client: ClientHandle, topic: str) -> bool:
        return not (client.client_id == "picky" and topic == "open/secret")


def test_authenticator_sees_certificate_and_can_refuse(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    auth = RecordingAuthenticator()
    srv = make_server(authenticator=auth)
    ok = Client(srv.port, pki.client("dev-ok"), "dev-ok", 5)
    ok.connect()
    info = auth.seen[0]
    assert info.peer_cert_der and info.peer_chain_der[0] == info.peer_cert_der
    assert (info.listener, info.protocol_level, info.client_id) == ("mqtts", 5, "dev-ok")
    handles = srv.call(lambda: list(srv.server.clients()))
    assert [h.identity for h in handles] == ["thing:dev-ok"]
    for version, expected in ((5, 0x8A), (4, 5)):
        bad = Client(srv.port, pki.client("dev-ok"), "banned", version)
        rc, _, _ = bad.connect(expect_ok=False)
        assert reason_value(rc) in (expected, 0x87 if version == 4 else expected)
        bad.stop()
    ok.stop()


def test_authorizer_denials(make_server: Callable[..., ServerThread], pki: MQTTTestPKI) -> None:
    srv = make_server(authorizer=TopicAuthorizer())
    v5 = Client(srv.port, pki.client("a"), "a5", 5)
    v5.connect()
    v4 = Client(srv.port, pki.client("a"), "a4", 4)
    v4.connect()
    assert [reason_value(c) for c in v5.subscribe("forbidden/x", 1)] == [0x87]
    assert [reason_value(c) for c in v4.subscribe("forbidden/x", 1)] == [0x80]
    v5.subscribe("#", 1)
    picky = Client(srv.port, pki.client("a"), "picky", 5)
    picky.connect()
    picky.subscribe("open/#", 1)
    assert reason_value(v4.publish("forbidden/y", b"no", qos=1)) == 0  # 3.1.1 cannot say why
    assert reason_value(v5.publish("forbidden/y", b"no", qos=1)) == 0x87
    v5.publish("forbidden/z", b"no", qos=0)
    v4.publish("open/secret", b"s", qos=1)
    assert v5.expect().topic == "open/secret"
    picky.expect_none()  # may_receive said no
    v4.publish("open/public", b"p", qos=1)
    assert picky.expect().topic == "open/public"
    v5.expect()
    v5.expect_none()
    assert srv.call(lambda: srv.server.stats_publish_denied) == 3
    for c in (v5, v4, picky):
        c.stop()


class GatedInterceptor:
    """Handles `$aws/rules/...` itself: replies to the sender only, acks when released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.seen: list[InboundPublish] = []

    async def intercept(self, client: ClientHandle, message: InboundPublish) -> ReasonCode | None:
        self.seen.append(message)
        if not message.topic.startswith("$aws/rules/"):
            return None
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        client.deliver(message.topic + "/accepted", b'{"ok":true}', qos=1)
        return ReasonCode.SUCCESS


def test_interceptor_acks_after_return_and_replies_to_sender_only(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    gate = GatedInterceptor()
    srv = make_server(interceptor=gate)
    dev = Client(srv.port, pki.client("d"), "dev", 5)
    dev.connect()
    other = Client(srv.port, pki.client("d"), "other", 5)
    other.connect()
    other.subscribe("$aws/rules/#", 1)
    info = dev.publish("$aws/rules/Ingest", b"{}", qos=1, wait=False)
    assert gate.entered.wait(5)
    assert not info.is_published()  # no PUBACK while the interceptor runs
    gate.release.set()
    info.wait_for_publish(5)
    got = dev.expect()
    assert (got.topic, got.payload) == ("$aws/rules/Ingest/accepted", b'{"ok":true}')
    other.expect_none()  # neither the request nor the reply was routed
    dev.publish("normal/topic", b"x", qos=1)  # None: routed as usual
    assert [m.topic for m in gate.seen] == ["$aws/rules/Ingest", "normal/topic"]
    dev.stop()
    other.stop()


def test_server_publish_disconnect_clients_and_graceful_stop(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    srv = make_server()
    a = Client(srv.port, pki.client("x"), "a", 5)
    a.connect()
    a.subscribe("$aws/things/a/jobs/notify", 1)
    b = Client(srv.port, pki.client("x"), "b", 5)
    b.connect()
    old = Client(srv.port, pki.client("x"), "old", 4)
    old.connect()
    srv.call(lambda: srv.server.publish("$aws/things/a/jobs/notify", b"{}", qos=1))
    assert a.expect().topic == "$aws/things/a/jobs/notify"
    kicked = srv.call(
        lambda: srv.server.disconnect_clients(
            lambda c: c.client_id == "b", ReasonCode.ADMINISTRATIVE_ACTION
        )
    )
    assert kicked == 1
    assert reason_value(b.disconnects.get(timeout=5)) == 0x98
    srv.run(srv.server.stop())
    assert reason_value(a.disconnects.get(timeout=5)) == 0x8B
    old.disconnects.get(timeout=5)  # 3.1.1: just closed
    for c in (a, b, old):
        c.paho.loop_stop()
