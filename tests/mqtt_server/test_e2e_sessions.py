"""Sessions, offline queues, redelivery, takeover, wills and keep alive, with paho over mTLS."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from paho.mqtt.packettypes import PacketTypes

from lantern.mqtt.packets import Connack, Disconnect, Pingreq, Pingresp
from lantern.mqtt.properties import Properties
from lantern.mqtt.reason_codes import ReasonCode
from support.mqtt_server import Client, MQTTTestPKI, RawTLS, ServerThread, props, reason_value

# Also on a two-node cluster, clients alternating between nodes (see conftest.py).
CLUSTER_SCENARIOS = True

CONNECT = PacketTypes.CONNECT
WILLMESSAGE = PacketTypes.WILLMESSAGE
DISCONNECT = PacketTypes.DISCONNECT


def test_v311_persistent_session_queue_and_session_present(
    make_client: Callable[..., Client],
) -> None:
    dev = make_client("dev", 4, clean=False)
    _, present, _ = dev.connect()
    assert present is False
    dev.subscribe("cmd/dev", 1)
    dev.disconnect()
    pub = make_client("pub")
    pub.connect()
    for i in range(3):
        pub.publish("cmd/dev", f"m{i}".encode(), qos=1)
    pub.publish("cmd/dev", b"qos0-dropped-offline", qos=0)
    again = make_client("dev", 4, clean=False)
    _, present, _ = again.connect()
    assert present is True
    assert [again.expect().payload for _ in range(3)] == [b"m0", b"m1", b"m2"]
    again.expect_none()
    # Subscriptions were kept: a live message arrives without re-subscribing.
    pub.publish("cmd/dev", b"live", qos=1)
    assert again.expect().payload == b"live"


def test_v311_clean_session_discards(make_client: Callable[..., Client]) -> None:
    dev = make_client("dev", 4, clean=False)
    dev.connect()
    dev.subscribe("x", 1)
    dev.disconnect()
    clean = make_client("dev", 4, clean=True)
    _, present, _ = clean.connect()
    assert present is False
    clean.disconnect()
    back = make_client("dev", 4, clean=False)
    _, present, _ = back.connect()
    assert present is False


def test_v5_session_expiry_and_clean_start(make_client: Callable[..., Client]) -> None:
    dev = make_client("dev5")
    dev.connect(properties=props(CONNECT, SessionExpiryInterval=300))
    dev.subscribe("q/dev5", 2)
    dev.disconnect()
    pub = make_client("pub")
    pub.connect()
    pub.publish("q/dev5", b"while-away", qos=2)
    back = make_client("dev5")
    _, present, _ = back.connect(
        clean_start=False, properties=props(CONNECT, SessionExpiryInterval=300)
    )
    assert present is True
    got = back.expect()
    assert (got.payload, got.qos) == (b"while-away", 2)
    back.disconnect()
    fresh = make_client("dev5")
    _, present, _ = fresh.connect(clean_start=True)
    assert present is False


def test_v5_session_expiry_zero_ends_session(make_client: Callable[..., Client]) -> None:
    dev = make_client("dev0")
    dev.connect()  # Session Expiry Interval absent = 0
    dev.subscribe("z", 1)
    dev.disconnect()
    back = make_client("dev0")
    _, present, _ = back.connect(clean_start=False)
    assert present is False


def test_session_expiry_is_capped_in_connack(
    make_server: Callable[..., ServerThread], pki: MQTTTestPKI
) -> None:
    srv = make_server(session_expiry_max=60)
    raw = RawTLS.open(srv.port, pki.client("cap"))
    ack = raw.connect("cap", properties=Properties(session_expiry_interval=0xFFFFFFFF))
    assert isinstance(ack, Connack)
    assert ack.properties.session_expiry_interval == 60
    raw.close()


def test_unacknowledged_qos1_is_redelivered_with_dup(make_client: Callable[..., Client]) -> None:
    dev = make_client("dev", 4, clean=False, manual_ack=True)
    dev.connect()
    dev.subscribe("r", 1)
    pub = make_client("pub")
    pub.connect()
    pub.publish("r", b"important", qos=1)
    first = dev.expect()
    assert (first.payload, first.dup) == (b"important", False)
    dev.kill()  # never acknowledged
    back = make_client("dev", 4, clean=False)
    _, present, _ = back.connect()
    assert present
    again = back.expect()
    assert (again.payload, again.dup, again.qos) == (b"important", True, 1)
    back.expect_none()


def test_inflight_window_honours_receive_maximum(make_client: Callable[..., Client]) -> None:
    dev = make_client("dev", manual_ack=True)
    dev.connect(properties=props(CONNECT, ReceiveMaximum=2))
    dev.subscribe("w", 1)
    pub = make_client("pub")
    pub.connect()
    for i in range(4):
        pub.publish("w", str(i).encode(), qos=1)
    a, b = dev.expect(), dev.expect()
    assert [a.payload, b.payload] == [b"0", b"1"]
    dev.expect_none()  # window full: 2 and 3 wait
    dev.paho.ack(1, 1)
    assert dev.expect().payload == b"2"
    dev.expect_none()


def test_takeover_sends_0x8e_to_the_old_connection(make_client: Callable[..., Client]) -> None:
    old = make_client("same")
    old.connect(properties=props(CONNECT, SessionExpiryInterval=60))
    old.subscribe("t/same", 1)
    new = make_client("same")
    _, present, _ = new.connect(
        clean_start=False, properties=props(CONNECT, SessionExpiryInterval=60)
    )
    assert present is True
    assert reason_value(old.disconnects.get(timeout=5)) == 0x8E
    pub = make_client("pub")
    pub.connect()
    pub.publish("t/same", b"to-new", qos=1)
    assert new.expect().payload == b"to-new"


def _will_client(make_client: Callable[..., Client], cid: str, delay: int | None = None) -> Client:
    c = make_client(cid)
    will_props = props(WILLMESSAGE, WillDelayInterval=delay) if delay is not None else None
    c.paho.will_set("wills/" + cid, b"gone", qos=1, properties=will_props)
    return c


def test_will_on_lost_connection_not_on_normal_disconnect(
    make_client: Callable[..., Client],
) -> None:
    watcher = make_client("watcher")
    watcher.connect()
    watcher.subscribe("wills/#", 1)
    polite = _will_client(make_client, "polite")
    polite.connect()
    polite.disconnect()
    rude = _will_client(make_client, "rude")
    rude.connect()
    rude.kill()
    got = watcher.expect()
    assert (got.topic, got.payload) == ("wills/rude", b"gone")
    watcher.expect_none()


def test_disconnect_with_will_message_publishes_will(make_client: Callable[..., Client]) -> None:
    from paho.mqtt.reasoncodes import ReasonCode as PahoRC

    watcher = make_client("watcher")
    watcher.connect()
    watcher.subscribe("wills/#", 1)
    c = _will_client(make_client, "leaver")
    c.connect()
    c.disconnect(reasoncode=PahoRC(DISCONNECT, identifier=0x04))
    assert watcher.expect().topic == "wills/leaver"


def test_will_delay_and_cancel_by_reconnect(make_client: Callable[..., Client]) -> None:
    watcher = make_client("watcher")
    watcher.connect()
    watcher.subscribe("wills/#", 1)
    late = _will_client(make_client, "late", delay=1)
    late.connect(properties=props(CONNECT, SessionExpiryInterval=60))
    started = time.monotonic()
    late.kill()
    got = watcher.expect()
    assert got.topic == "wills/late"
    assert time.monotonic() - started >= 0.9  # held back for the Will Delay Interval

    back = _will_client(make_client, "back", delay=1)
    back.connect(properties=props(CONNECT, SessionExpiryInterval=60))
    back.kill()
    again = make_client("back")
    again.connect(clean_start=False, properties=props(CONNECT, SessionExpiryInterval=60))
    watcher.expect_none(1.3)  # reconnected before the delay: no will


def test_takeover_publishes_will_without_delay(make_client: Callable[..., Client]) -> None:
    watcher = make_client("watcher")
    watcher.connect()
    watcher.subscribe("wills/#", 1)
    old = _will_client(make_client, "dup")
    old.connect()
    new = make_client("dup")
    new.connect()
    assert watcher.expect().topic == "wills/dup"


def test_keepalive_timeout_sends_0x8d(server: ServerThread, pki: MQTTTestPKI) -> None:
    raw = RawTLS.open(server.port, pki.client("idle"))
    ack = raw.connect("idle", keep_alive=1)
    assert isinstance(ack, Connack) and ack.reason_code == 0
    raw.send_packet(Pingreq())
    assert isinstance(raw.read_packet(), Pingresp)
    started = time.monotonic()
    bye = raw.read_packet()  # silence for 1.5 x keep alive
    assert isinstance(bye, Disconnect) and bye.reason_code == ReasonCode.KEEP_ALIVE_TIMEOUT
    assert 1.2 <= time.monotonic() - started <= 3.0
    assert raw.read_packet() is None


@pytest.mark.parametrize("asked", [0, 5000])
def test_keepalive_capped_with_server_keep_alive(
    server: ServerThread, pki: MQTTTestPKI, asked: int
) -> None:
    raw = RawTLS.open(server.port, pki.client("ka"))
    ack = raw.connect("ka", keep_alive=asked)
    assert isinstance(ack, Connack)
    assert ack.properties.server_keep_alive == 1200
    raw.close()
