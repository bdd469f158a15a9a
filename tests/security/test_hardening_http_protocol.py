"""The guarded HTTP protocol in-process (EmbeddedUvicorn on a free port, asyncio streams as
clients): what the read timeout must not cut — a body that keeps coming, a slow application, a
client waiting for ``100 Continue`` — and that the cap's slots come back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from lantern.runtime.http_protocol import (
    MAX_HEADER_BYTES,
    ConnectionGuard,
    guarded_protocol_class,
)
from lantern.runtime.server import EmbeddedUvicorn

TIMEOUT = 0.3


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes the body's length; ``/slow`` waits before reading the body and before answering."""
    if scope["path"] == "/slow":
        await asyncio.sleep(3 * TIMEOUT)
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(3 * TIMEOUT)
    body = json.dumps({"size": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Running:
    guard: ConnectionGuard
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    guard = ConnectionGuard(max_connections=3, read_timeout=TIMEOUT)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=guarded_protocol_class(guard), ws="none",
        lifespan="off", log_level="warning",
    )  # fmt: skip
    http = EmbeddedUvicorn(config, guard)
    task = asyncio.create_task(http.serve())
    while not http.started:
        await asyncio.sleep(0.01)
    port = http.servers[0].sockets[0].getsockname()[1]
    yield Running(guard, port)
    http.should_exit = True
    await task


async def response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


async def test_a_body_that_keeps_coming_is_not_cut(server: Running) -> None:
    reader, writer = await server.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
    for _ in range(12):  # 12 bytes over ~2.4 timeouts, never pausing a whole timeout
        await asyncio.sleep(TIMEOUT * 0.2)
        writer.write(b"x")
    head, body = await response(reader)
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == {"size": 12}
    # The same connection: a body that stops coming is cut within two timeouts.
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nxx")
    started = asyncio.get_running_loop().time()
    head, body = await response(reader)
    assert head.startswith(b"HTTP/1.1 408") and json.loads(body)["code"] == "request_timeout"
    assert TIMEOUT * 0.9 <= asyncio.get_running_loop().time() - started <= TIMEOUT * 3
    writer.close()


async def test_a_slow_application_and_100_continue_are_not_the_clients_fault(
    server: Running,
) -> None:
    reader, writer = await server.connect()
    writer.write(
        b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # after ~3 timeouts
    assert continued.startswith(b"HTTP/1.1 100")
    writer.write(b"abc")
    head, body = await response(reader)  # answered ~3 timeouts after the body
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == {"size": 3}
    # Keep-alive: the next request may come; one that stalls in its headers is cut.
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    head, body = await response(reader)
    assert head.startswith(b"HTTP/1.1 408") and b"request_timeout" in body
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert server.guard.timed_out == 1
    writer.close()


async def test_the_caps_slots_come_back(server: Running) -> None:
    held = [await server.connect() for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, writer = await server.connect()
    head, body = await response(reader)
    assert head.startswith(b"HTTP/1.1 503") and json.loads(body)["code"] == "too_many_connections"
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    assert server.guard.open == 0 and server.guard.refused == 1
    reader, writer = await server.connect()
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = await response(reader)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_endless_headers_get_431(server: Running) -> None:
    reader, writer = await server.connect()
    # A large body sent in the same write as its headers is not header bytes.
    body = b"b" * (4 * MAX_HEADER_BYTES)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    head, answer = await response(reader)
    assert head.startswith(b"HTTP/1.1 200") and json.loads(answer) == {"size": len(body)}
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    try:
        for _ in range(4 * MAX_HEADER_BYTES // len(line)):  # the limit is checked per read
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass  # closed while we were still sending
    head, body = await response(reader)
    assert head.startswith(b"HTTP/1.1 431") and json.loads(body)["code"] == "headers_too_large"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
