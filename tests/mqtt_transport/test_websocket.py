"""WebSocket listener: upgrade on /mqtt with subprotocol mqtt, framing, ping, close, paho-mqtt."""

from __future__ import annotations

import asyncio
import ssl
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from support.mqtt_transport import Factory, Pki, Serve, echo, mini_mqtt


def ws_client(
    port: int, *, path: str = "/mqtt", subprotocols: list[str] | None = None, tls: bool = False,
    pki: Pki | None = None,
) -> ClientConnection:  # fmt: skip
    scheme = "wss" if tls else "ws"
    ctx: ssl.SSLContext | None = pki.client_context() if (tls and pki) else None
    return connect(
        f"{scheme}://localhost:{port}{path}",
        subprotocols=subprotocols if subprotocols is not None else ["mqtt"],  # type: ignore[arg-type]
        ssl=ctx,
        open_timeout=10,
    )


@pytest.mark.parametrize("kind", ["ws", "wss"])
async def test_binary_frames_are_a_byte_stream(pki: Pki, serve: Serve, kind: str) -> None:
    factory = Factory(echo)
    listener = await serve(kind, factory)
    messages = [b"\x10\x0c", b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", b"ab" * 40000]

    def client() -> tuple[str | None, bytes]:
        with ws_client(listener.port, tls=kind == "wss", pki=pki) as ws:
            for message in messages:
                ws.send(message)
            ws.send([b"frag-1|", b"frag-2|", b"frag-3"])  # one message in three frames
            expected = sum(len(m) for m in messages) + len(b"frag-1|frag-2|frag-3")
            got = b""
            while len(got) < expected:
                data = ws.recv(timeout=10)
                assert isinstance(data, bytes)  # the server sends binary frames
                got += data
            return ws.subprotocol, got

    subprotocol, echoed = await asyncio.to_thread(client)
    assert subprotocol == "mqtt"
    assert echoed == b"".join(messages) + b"frag-1|frag-2|frag-3"
    rec = await factory.next()
    assert rec.stream is not None
    if kind == "wss":
        assert rec.peer_cert_at_open == pki.client_der
    else:
        assert rec.peer_cert_at_open is None


async def test_mqttv31_subprotocol_is_accepted(serve: Serve) -> None:
    listener = await serve("ws", Factory(echo))

    def client() -> str | None:
        with ws_client(listener.port, subprotocols=["mqttv3.1"]) as ws:
            return ws.subprotocol

    assert await asyncio.to_thread(client) == "mqttv3.1"


@pytest.mark.parametrize(
    ("path", "subprotocols", "status"),
    [("/other", ["mqtt"], 404), ("/mqtt", [], 400), ("/mqtt", ["chat"], 400)],
)
async def test_bad_upgrade_is_refused(
    serve: Serve, path: str, subprotocols: list[str], status: int
) -> None:
    factory = Factory(echo)
    listener = await serve("ws", factory)

    def client() -> int:
        with pytest.raises(InvalidStatus) as info:
            ws_client(listener.port, path=path, subprotocols=subprotocols)
        return info.value.response.status_code

    assert await asyncio.to_thread(client) == status
    assert factory.made == []  # no MQTT receiver for a refused upgrade


async def test_text_frame_closes_with_1003(serve: Serve) -> None:
    factory = Factory(echo)
    listener = await serve("ws", factory)

    def client() -> int | None:
        with ws_client(listener.port) as ws:
            ws.send("not binary")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            return info.value.rcvd.code if info.value.rcvd else None

    assert await asyncio.to_thread(client) == 1003
    rec = await factory.next()
    await asyncio.wait_for(rec.closed.wait(), 10)
    assert rec.data == b""


async def test_ping_pong_and_server_close(serve: Serve) -> None:
    factory = Factory()
    listener = await serve("ws", factory)
    go_close = threading.Event()

    def client() -> tuple[bool, int | None]:
        with ws_client(listener.port) as ws:
            pong = ws.ping(b"hi").wait(10)
            ws.send(b"ready")
            go_close.wait(10)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            return pong, info.value.rcvd.code if info.value.rcvd else None

    task = asyncio.create_task(asyncio.to_thread(client))
    rec = await factory.next()
    await rec.wait_for_bytes(5)
    assert rec.stream is not None
    rec.stream.close()
    go_close.set()
    assert await task == (True, 1000)
    await asyncio.wait_for(rec.closed.wait(), 10)


async def test_handshake_timeout_for_upgrade(serve: Serve) -> None:
    import socket

    factory = Factory()
    listener = await serve("ws", factory, handshake_timeout=0.2)

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
            sock.sendall(b"GET /mqtt HTTP/1.1\r\n")  # and never finishes the request
            return sock.recv(100)

    assert await asyncio.to_thread(client) == b""
    assert factory.made == []


async def test_unmasked_frame_is_a_protocol_error(serve: Serve) -> None:
    factory = Factory(echo)
    listener = await serve("ws", factory)

    def client() -> int | None:
        with ws_client(listener.port) as ws:
            # Bypass the client's masking: write an unmasked binary frame by hand.
            frame = Frame(Opcode.BINARY, b"abc").serialize(mask=False, extensions=[])
            ws.socket.sendall(frame)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            return info.value.rcvd.code if info.value.rcvd else None

    assert await asyncio.to_thread(client) == 1002
    rec = await factory.next()
    assert rec.data == b""


@pytest.mark.parametrize("kind", ["ws", "wss"])
async def test_paho_mqtt_over_websocket(pki: Pki, serve: Serve, kind: str) -> None:
    factory = Factory(mini_mqtt)
    listener = await serve(kind, factory)

    def client() -> bytes:
        got = threading.Event()
        payloads: list[bytes] = []
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="ws-1", transport="websockets")
        c.ws_set_options(path="/mqtt")
        if kind == "wss":
            c.tls_set(str(pki.ca.ca_file), str(pki.client_cert), str(pki.client_key))
        c.on_message = lambda _c, _u, msg: (payloads.append(msg.payload), got.set())
        c.on_connect = lambda cl, _u, _f, _rc, _p: cl.subscribe("t/1")
        c.on_subscribe = lambda cl, _u, _m, _rc, _p: cl.publish("t/1", b"over websocket")
        c.connect("localhost", listener.port, keepalive=30)
        c.loop_start()
        try:
            assert got.wait(10), "no message came back"
        finally:
            c.disconnect()
            c.loop_stop()
        return payloads[0]

    assert await asyncio.to_thread(client) == b"over websocket"
    rec = await factory.next()
    assert rec.stream is not None and rec.stream.listener == kind
    await asyncio.wait_for(rec.closed.wait(), 10)
