"""TLS listener: mutual TLS, ALPN, limits, flow control and closing, with real ssl clients."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest

from lantern.mqtt.transport import start_tcp_listener, start_tls_listener
from support.mqtt_transport import (
    Factory,
    Pki,
    Recorder,
    Serve,
    echo,
    recv_exactly,
    recv_until_closed,
    refused,
    tls_connect,
    wait_until,
)


async def test_handshake_echo_and_peer_certificate(pki: Pki, serve: Serve) -> None:
    factory = Factory(echo)
    listener = await serve("tls", factory)

    def client() -> bytes:
        with tls_connect(listener.port, pki.client_context()) as sock:
            sock.sendall(b"hello mqtt")
            return recv_exactly(sock, 10)

    assert await asyncio.to_thread(client) == b"hello mqtt"
    rec = await factory.next()
    assert rec.peer_cert_at_open == pki.client_der  # available in stream_opened
    assert rec.chain_at_open[0] == pki.client_der
    assert len(rec.chain_at_open) == 2  # leaf, then the platform CA
    assert rec.stream is not None and rec.stream.listener == "tls"
    assert rec.stream.remote_address.startswith("127.0.0.1:")
    await asyncio.wait_for(rec.closed.wait(), 10)
    assert rec.close_calls == [None]
    await wait_until(lambda: listener.connection_count() == 0)


@pytest.mark.parametrize("which", ["no certificate", "certificate of another CA"])
async def test_client_without_valid_certificate_is_refused(
    pki: Pki, serve: Serve, which: str
) -> None:
    factory = Factory(echo)
    listener = await serve("tls", factory)
    ctx = pki.client_context(cert=False) if which == "no certificate" else None
    ctx = ctx or pki.client_context(foreign=True)
    assert await asyncio.to_thread(refused, lambda: tls_connect(listener.port, ctx))
    await wait_until(lambda: listener.connection_count() == 0)
    assert factory.made == []  # the receiver is never created


async def test_handshake_timeout_closes_silent_connection(serve: Serve) -> None:
    factory = Factory(echo)
    listener = await serve("tls", factory, handshake_timeout=0.2)

    def silent_client() -> bytes:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
            return sock.recv(16)  # the server closes after the timeout

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.to_thread(silent_client) == b""
    assert loop.time() - started < 5
    await wait_until(lambda: listener.connection_count() == 0)
    assert factory.made == []


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (["x-amzn-mqtt-ca"], "x-amzn-mqtt-ca"),
        (["mqtt"], "mqtt"),
        (["h2", "mqtt", "x-amzn-mqtt-ca"], "x-amzn-mqtt-ca"),
        (None, None),
        (["h2"], None),
    ],
)
async def test_alpn_selection(
    pki: Pki, serve: Serve, offered: list[str] | None, selected: str | None
) -> None:
    factory = Factory(echo)
    listener = await serve("tls", factory)

    def client() -> str | None:
        with tls_connect(listener.port, pki.client_context(alpn=offered)) as sock:
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
            return sock.selected_alpn_protocol()

    assert await asyncio.to_thread(client) == selected
    rec = await factory.next()
    assert rec.alpn_at_open == selected


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_max_connections(pki: Pki, serve: Serve, kind: str) -> None:
    factory = Factory(echo)
    listener = await serve(kind, factory, max_connections=2)

    def connect() -> socket.socket:
        if kind == "tls":
            return tls_connect(listener.port, pki.client_context())
        return socket.create_connection(("127.0.0.1", listener.port), timeout=10)

    def open_and_ping() -> socket.socket:
        sock = connect()
        sock.sendall(b"p")
        assert recv_exactly(sock, 1) == b"p"
        return sock

    first = await asyncio.to_thread(open_and_ping)
    second = await asyncio.to_thread(open_and_ping)
    assert listener.connection_count() == 2
    assert await asyncio.to_thread(refused, connect)  # the third is closed at once
    assert len(factory.made) == 2
    first.close()
    await wait_until(lambda: listener.connection_count() == 1)
    third = await asyncio.to_thread(open_and_ping)  # room again
    for sock in (second, third):
        sock.close()


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_split_writes_arrive_in_order(pki: Pki, serve: Serve, kind: str) -> None:
    factory = Factory()
    listener = await serve(kind, factory)
    pieces = [bytes([i % 251]) * (1 + (i * 37) % 700) for i in range(300)]
    pieces.append(bytes(range(256)) * 800)  # 200 KiB: many records, many reads
    expected = b"".join(pieces)

    def client() -> None:
        sock = (
            tls_connect(listener.port, pki.client_context())
            if kind == "tls"
            else socket.create_connection(("127.0.0.1", listener.port), timeout=10)
        )
        with sock:
            for piece in pieces:
                sock.sendall(piece)  # one TLS record (or more) per piece
            recv_exactly(sock, 1)

    task = asyncio.create_task(asyncio.to_thread(client))
    rec = await factory.next()
    assert await rec.wait_for_bytes(len(expected)) == expected
    assert rec.stream is not None
    rec.stream.write(b"k")
    await task


@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_large_write_pauses_then_resumes_and_is_flushed(
    pki: Pki, serve: Serve, kind: str
) -> None:
    big = bytes(range(256)) * 16 * 1024  # 4 MiB
    proceed = asyncio.Event()

    def on_data(rec: Recorder, data: bytes) -> None:
        assert rec.stream is not None
        for i in range(0, len(big), 65536):
            rec.stream.write(big[i : i + 65536])
        assert rec.stream.write_buffer_size() >= len(big) - 65536

    factory = Factory(on_data)
    listener = await serve(kind, factory)
    loop = asyncio.get_running_loop()

    def client() -> bytes:
        sock = (
            tls_connect(listener.port, pki.client_context())
            if kind == "tls"
            else socket.create_connection(("127.0.0.1", listener.port), timeout=10)
        )
        with sock:
            sock.sendall(b"go")
            asyncio.run_coroutine_threadsafe(proceed.wait(), loop).result(10)
            return recv_exactly(sock, len(big))

    task = asyncio.create_task(asyncio.to_thread(client))
    rec = await factory.next()
    await asyncio.wait_for(rec.paused.wait(), 10)  # above the high-water mark
    assert not rec.resumed.is_set()
    proceed.set()  # now the client reads everything
    assert await task == big
    await asyncio.wait_for(rec.resumed.wait(), 10)
    assert rec.stream is not None and rec.stream.write_buffer_size() == 0


@pytest.mark.parametrize("method", ["close", "abort"])
@pytest.mark.parametrize("kind", ["tcp", "tls"])
async def test_close_flushes_but_abort_drops(
    pki: Pki, serve: Serve, kind: str, method: str
) -> None:
    payload = b"z" * (512 * 1024)

    def on_data(rec: Recorder, data: bytes) -> None:
        assert rec.stream is not None
        rec.stream.write(payload)
        getattr(rec.stream, method)()
        assert rec.stream.is_closing()
        rec.stream.write(b"ignored after close")

    factory = Factory(on_data)
    listener = await serve(kind, factory)

    def client() -> tuple[bytes, str]:
        sock = (
            tls_connect(listener.port, pki.client_context())
            if kind == "tls"
            else socket.create_connection(("127.0.0.1", listener.port), timeout=10)
        )
        with sock:
            sock.sendall(b"go")
            return recv_until_closed(sock)

    data, how = await asyncio.to_thread(client)
    rec = await factory.next()
    await asyncio.wait_for(rec.closed.wait(), 10)
    assert len(rec.close_calls) == 1
    if method == "close":
        assert (data, how) == (payload, "eof")  # everything, then a clean end (close_notify)
    else:
        assert len(data) < len(payload)


async def test_closed_listener_refuses_new_but_keeps_existing(pki: Pki, serve: Serve) -> None:
    factory = Factory(echo)
    listener = await serve("tls", factory)
    port = listener.port
    sock = await asyncio.to_thread(tls_connect, port, pki.client_context())
    await factory.next()
    await listener.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), 5)
    await asyncio.to_thread(sock.sendall, b"still here")
    assert await asyncio.to_thread(recv_exactly, sock, 10) == b"still here"
    sock.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_connections": 0}, "max_connections must be >= 1"),
        ({"max_connections": 5, "handshake_timeout": 0}, "handshake_timeout must be > 0"),
    ],
)
async def test_bad_listener_arguments(
    server_ctx: ssl.SSLContext, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await start_tls_listener(
            "x",
            "127.0.0.1",
            0,
            Factory(),
            ssl_context=server_ctx,
            **kwargs,  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="max_connections must be >= 1"):
        await start_tcp_listener("x", "127.0.0.1", 0, Factory(), max_connections=0)


def _final_flight_with_data(
    port: int, ctx: ssl.SSLContext, data: bytes
) -> tuple[socket.socket, bytes]:
    """Drive a TLS client to the end of its handshake without sending its last flight; return
    the socket and that flight with ``data`` (application records) appended."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    tls.write(data)
    return sock, outgoing.read()


async def test_application_data_coalesced_with_the_last_handshake_flight(
    pki: Pki, serve: Serve
) -> None:
    """The client's Finished and its first bytes of MQTT in one segment, or split anywhere:
    every byte reaches the receiver (nothing left in the TLS buffers without a read event)."""
    factory = Factory()
    listener = await serve("tls", factory)
    ctx = pki.client_context()
    data = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # a CONNECT
    probe, sample = await asyncio.to_thread(_final_flight_with_data, listener.port, ctx, data)
    probe.close()  # its handshake never ends: no receiver is made for it
    offsets = sorted({0, *range(1, len(sample), 29), *range(len(sample) - 40, len(sample))})
    for n, offset in enumerate(offsets, start=1):

        def client(offset: int = offset) -> socket.socket:
            sock, flight = _final_flight_with_data(listener.port, ctx, data)
            sock.sendall(flight[:offset])
            if offset:
                time.sleep(0.002)  # let the server read the first part on its own
            sock.sendall(flight[offset:])
            return sock

        sock = await asyncio.to_thread(client)
        try:
            rec = await factory.next(n)
            assert await rec.wait_for_bytes(len(data)) == data, f"split at {offset}"
        finally:
            sock.close()
