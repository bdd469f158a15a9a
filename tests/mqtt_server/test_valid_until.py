"""``AuthResult.valid_until``: the server closes a connection when its credentials end (MQTT 5
DISCONNECT 0x98, 3.1.1 closed), without knowing what the credentials are."""

from __future__ import annotations

import time
from collections.abc import Callable

from lantern.mqtt.hooks import AuthResult, ConnectInfo
from lantern.mqtt.packets import Connack, Disconnect
from lantern.mqtt.reason_codes import ReasonCode
from support.mqtt_server import Client, MQTTTestPKI, RawTLS, ServerThread, reason_value


class ValidFor:
    """Accepts everyone; the connection of client id ``short-*`` is valid for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def authenticate(self, info: ConnectInfo) -> AuthResult:
        until = time.time() + self.seconds if info.client_id.startswith("short") else None
        return AuthResult(identity=info.client_id, valid_until=until)


def test_connection_closed_with_0x98_when_its_credentials_end(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    server = make_server(authenticator=ValidFor(0.6))
    short = Client(server.port, pki.client("dev"), "short-5", 5)
    other = Client(server.port, pki.client("dev"), "long-5", 5)
    started = time.monotonic()
    short.connect(keepalive=60)
    other.connect(keepalive=60)
    rc = short.disconnects.get(timeout=5)
    elapsed = time.monotonic() - started
    assert reason_value(rc) == ReasonCode.ADMINISTRATIVE_ACTION
    assert 0.5 <= elapsed < 2.0, elapsed
    # The other connection (no end) lives on and works.
    other.subscribe("t", 1)
    other.publish("t", b"still here", qos=1)
    assert other.expect().payload == b"still here"
    short.paho.loop_stop()
    other.stop()


def test_311_connection_is_just_closed_when_its_credentials_end(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    server = make_server(authenticator=ValidFor(0.3))
    raw = RawTLS.open(server.port, pki.client("dev"))
    connack = raw.connect("short-4", level=4, keep_alive=60)
    assert isinstance(connack, Connack) and connack.reason_code == 0
    started = time.monotonic()
    assert raw.read_packet(level=4) is None  # closed, nothing sent (no DISCONNECT in 3.1.1)
    assert 0.2 <= time.monotonic() - started < 2.0
    raw.close()


def test_credentials_already_ended_close_at_once_after_connack(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    server = make_server(authenticator=ValidFor(-1))
    raw = RawTLS.open(server.port, pki.client("dev"))
    assert isinstance(raw.connect("short-now"), Connack)
    packet = raw.read_packet()
    assert isinstance(packet, Disconnect)
    assert packet.reason_code == ReasonCode.ADMINISTRATIVE_ACTION
    raw.close()
