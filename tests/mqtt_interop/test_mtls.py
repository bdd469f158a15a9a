"""The core interop scenarios over the mTLS listener (client certificates from a temporary
platform CA), at both protocol levels; certificate refusals; and the WebSocket listener."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lantern.mqtt.codec import encode
from lantern.mqtt.packets import Connect, Publish, Will
from lantern.pki import CertificateAuthority, KeyType
from mqtt_interop.harness import (
    TOPICS,
    WAIT,
    WILDTOPICS,
    ClientFiles,
    InteropPKI,
    PahoClient,
    ServerThread,
)
from mqtt_interop.raw import RawClient

ServerFactory = Callable[..., ServerThread]
LEVELS = pytest.mark.parametrize("level", [4, 5], ids=["v311", "v5"])


@pytest.fixture
def tls_server(make_server: ServerFactory) -> ServerThread:
    return make_server(tls=True)


@pytest.fixture
def tls_client(tls_server: ServerThread, pki: InteropPKI) -> Iterator[Callable[..., PahoClient]]:
    clients: list[PahoClient] = []

    def make(client_id: str, level: int, cert: str = "device") -> PahoClient:
        client = PahoClient(
            port=tls_server.tls_port, client_id=client_id, version=level, files=pki.client(cert)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


@LEVELS
def test_mtls_publish_subscribe_qos_0_1_2(
    tls_client: Callable[..., PahoClient], level: int
) -> None:
    sub = tls_client("sub", level, "device-a")
    assert sub.connect().session_present is False
    assert sub.subscribe(WILDTOPICS[0], 2) == [2]
    pub = tls_client("pub", level, "device-b")
    pub.connect()
    for qos in (0, 1, 2):
        assert pub.publish(TOPICS[1], f"qos {qos}".encode(), qos) == 0
        got = sub.expect()
        assert (got.topic, got.payload, got.qos, got.retain) == (
            TOPICS[1],
            f"qos {qos}".encode(),
            qos,
            False,
        )
    sub.expect_none()


@LEVELS
def test_mtls_retained(tls_client: Callable[..., PahoClient], level: int) -> None:
    a = tls_client("myclientid", level)
    a.connect()
    for qos, topic in enumerate(TOPICS[1:4]):
        a.publish(topic, f"qos {qos}".encode(), qos, retain=True)
    a.subscribe(WILDTOPICS[5], 2)
    got = a.expect_n(3)
    assert sorted((m.topic, m.qos, m.retain) for m in got) == sorted(
        [(TOPICS[1], 0, True), (TOPICS[2], 1, True), (TOPICS[3], 2, True)]
    )
    for topic in TOPICS[1:4]:
        a.publish(topic, b"", 1, retain=True)
    a.expect_n(3)
    b = tls_client("other", level)
    b.connect()
    b.subscribe(WILDTOPICS[5], 2)
    b.expect_none()


@LEVELS
def test_mtls_will(
    tls_server: ServerThread,
    tls_client: Callable[..., PahoClient],
    pki: InteropPKI,
    level: int,
) -> None:
    b = tls_client("myclientid2", level)
    b.connect()
    b.subscribe(TOPICS[2], 2)
    a = RawClient.open(tls_server.tls_port, level, pki.client("device"))
    try:
        a.connect("myclientid", will=Will(TOPICS[2], b"client not disconnected", 2))
    finally:
        a.kill()
    got = b.expect()
    assert (got.topic, got.payload, got.qos) == (TOPICS[2], b"client not disconnected", 2)


def refused(port: int, ctx: ssl.SSLContext) -> None:
    """Assert a TLS client with this context never gets a CONNACK."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        try:
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
            sock.sendall(encode(Connect("intruder", 5), 5))
            data = sock.recv(100)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return
        assert data == b"", f"server answered {data!r}"
    finally:
        raw.close()


def test_mtls_without_a_client_certificate_is_refused(
    tls_server: ServerThread, pki: InteropPKI
) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca.ca_file))
    refused(tls_server.tls_port, ctx)


def test_mtls_certificate_from_another_ca_is_refused(
    tls_server: ServerThread, pki: InteropPKI, tmp_path: Path
) -> None:
    other, _ = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    issued = other.issue("stranger", KeyType.EC_P256)
    assert issued.private_key_pem is not None
    (tmp_path / "s.crt").write_text(issued.certificate_pem)
    (tmp_path / "s.key").write_text(issued.private_key_pem)
    ctx = ssl.create_default_context(cafile=str(pki.ca.ca_file))
    ctx.load_cert_chain(str(tmp_path / "s.crt"), str(tmp_path / "s.key"))
    refused(tls_server.tls_port, ctx)
    # The server still serves good clients.
    good = RawClient.open(tls_server.tls_port, 5, pki.client("device"))
    try:
        good.connect("good")
        good.subscribe(TOPICS[0], 0)
        good.publish(TOPICS[0], b"fine", 0)
        assert good.expect(Publish).payload == b"fine"
    finally:
        good.close()


def test_plain_and_mtls_clients_talk_to_each_other(
    make_server: ServerFactory, pki: InteropPKI
) -> None:
    server = make_server(tls=True)
    files: ClientFiles = pki.client("device")
    tls = PahoClient(port=server.tls_port, client_id="tls", version=5, files=files)
    plain = PahoClient(port=server.tcp_port, client_id="plain", version=4)
    try:
        tls.connect()
        plain.connect()
        tls.subscribe(TOPICS[0], 1)
        plain.publish(TOPICS[0], b"across listeners", 1)
        assert tls.expect().payload == b"across listeners"
    finally:
        tls.stop()
        plain.stop()


@LEVELS
def test_websocket_listener(make_server: ServerFactory, level: int) -> None:
    server = make_server(ws=True)
    c = PahoClient(port=server.ws_port, client_id="ws", version=level, transport="websockets")
    try:
        c.connect()
        assert c.subscribe(TOPICS[0], 1) == [1]
        c.publish(TOPICS[0], b"over websocket", 1)
        assert c.expect().payload == b"over websocket"
    finally:
        c.stop()
