"""uvicorn's httptools protocol with a request read timeout and a connection cap.

uvicorn times out only idle keep-alive connections, and only after a first response: a client
that connects and never finishes its request headers holds its socket forever (slowloris), and
nothing bounds how many such sockets a listener accepts. :class:`GuardedHttpProtocol` adds:

- a cap (:class:`ConnectionGuard`): over ``max_connections`` open connections, a new one gets a
  503 and is closed at once;
- a read timeout of ``read_timeout`` seconds: a request's headers must arrive completely within
  it (counted from the connection, or from the first byte of a later request on a keep-alive
  connection), and its body may not stall longer than it between two reads. Time the server
  itself is not reading (back-pressure, pipelined requests, ``Expect: 100-continue`` not yet
  answered) does not count. On timeout the client gets a 408 when no response is under way,
  then the connection closes; an application still waiting for the body sees
  ``http.disconnect``.

Cost on the request path: no task, no middleware, no timer per request. One ``TimerHandle`` per
connection, re-armed only when it fires while a request is being read; parser callbacks record
the phase and a ``loop.time()``.

With TLS (``http.tls``) the cap must hold during the handshake too, which happens before an
asyncio protocol's ``connection_made``: :class:`TlsGate` admits the TCP connection and puts
asyncio's TLS layer (handshake bounded by ``read_timeout``) between it and the HTTP protocol.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ConnectionGuard", "GuardedHttpProtocol", "TlsGate", "guarded_protocol_class"]

log = logging.getLogger("lantern.http")

_IDLE, _HEADERS, _BODY = 0, 1, 2


def _answer(status: bytes, code: str, message: str, extra: bytes = b"") -> bytes:
    body = f'{{"error":"{message}","code":"{code}"}}'.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n"
        + extra + b"\r\n" + body
    )  # fmt: skip


_REFUSED = _answer(
    b"503 Service Unavailable",
    "too_many_connections",
    "this server has too many open connections; retry later",
    b"retry-after: 1\r\n",
)
_TIMED_OUT = _answer(
    b"408 Request Timeout", "request_timeout", "the request was not received in time"
)


class ConnectionGuard:
    """What the connections of one HTTP listener share: the cap, the read timeout, counters."""

    __slots__ = ("max_connections", "open", "read_timeout", "refused", "timed_out")

    def __init__(self, max_connections: int, read_timeout: float) -> None:
        if max_connections < 1 or read_timeout <= 0:
            raise ValueError("max_connections must be >= 1 and read_timeout > 0")
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.open = 0
        #: Connections closed at once because ``max_connections`` were open.
        self.refused = 0
        #: Connections closed because a request did not arrive within ``read_timeout``.
        self.timed_out = 0

    def admit(self) -> bool:
        """Count a new connection, or refuse it (and count that) at the cap."""
        if self.open >= self.max_connections:
            self.refused += 1
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class GuardedHttpProtocol(HttpToolsProtocol):
    """See the module docstring. Bound to a guard by :func:`guarded_protocol_class`."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admitted = False  # set by TlsGate for connections it admitted
        #: connection_made ran for an admitted connection (TlsGate's handshake verdict).
        self.made = False
        self._opened = False
        self._phase = _IDLE
        self._since = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.admitted and not self.guard.admit():
            log.debug("HTTP: %d connections open, refusing one", self.guard.max_connections)
            transport = cast(asyncio.Transport, transport)
            transport.write(_REFUSED)
            transport.close()
            return
        self._opened = self.made = True
        super().connection_made(cast(asyncio.Transport, transport))
        self._phase = _HEADERS
        self._since = self.loop.time()
        self._timer = self.loop.call_at(self._since + self.guard.read_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened:
            return  # refused: uvicorn never saw it
        self._opened = False
        self.guard.release()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = _IDLE
        super().connection_lost(exc)

    def _unsupported_upgrade_warning(self) -> None:
        # Lantern's HTTP app has no WebSocket routes (MQTT over WebSocket has its own
        # listener): an Upgrade request is an ordinary request, not worth a warning each time.
        log.debug("HTTP: ignored an Upgrade header from %s", self.client)

    # -- parser callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase == _IDLE:  # the first request's clock started at connection_made
            self._phase = _HEADERS
            self._since = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_at(self._since + self.guard.read_timeout, self._check)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._phase = _BODY
        self._since = self.loop.time()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._since = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _IDLE

    # -- the timer ---------------------------------------------------------------------------------

    def _check(self) -> None:
        self._timer = None
        if self._phase == _IDLE or self.transport.is_closing():
            return  # nothing being read: re-armed by the next request's first byte
        now = self.loop.time()
        cycle = self.cycle
        waiting_on_us = self.flow.read_paused or (
            self._phase == _BODY and cycle is not None and cycle.waiting_for_100_continue
        )
        if waiting_on_us:
            self._since = now
        deadline = self._since + self.guard.read_timeout
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._check)
            return
        self.guard.timed_out += 1
        log.debug("HTTP: request from %s not received in time, closing", self.client)
        if self._phase == _BODY and cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the application's receive() now says http.disconnect
            cycle.message_event.set()
            self.transport.write(_TIMED_OUT)
        elif self._phase == _HEADERS and (cycle is None or cycle.response_complete):
            self.transport.write(_TIMED_OUT)
        self._phase = _IDLE
        self.transport.close()


def guarded_protocol_class(guard: ConnectionGuard) -> type[GuardedHttpProtocol]:
    """A :class:`GuardedHttpProtocol` subclass bound to ``guard`` (uvicorn's ``http=``)."""
    return type("LanternHttpProtocol", (GuardedHttpProtocol,), {"guard": guard})


class TlsGate(asyncio.Protocol):
    """Admit a TCP connection, then put a TLS layer between it and a new HTTP protocol.

    The layer is asyncio's own ``SSLProtocol`` (what ``loop.create_server(ssl=...)`` and
    ``start_tls`` use), installed synchronously in :meth:`connection_made`: a ``start_tls`` in a
    task would let the ClientHello arrive while nobody reads it (uvloop starts reading right
    after ``connection_made``). Handshake and TLS shutdown are bounded by the read timeout; a
    connection whose handshake fails is released here, one that got through by the HTTP
    protocol's ``connection_lost``.
    """

    def __init__(
        self,
        make_http: Callable[[], GuardedHttpProtocol],
        guard: ConnectionGuard,
        context: ssl.SSLContext,
    ) -> None:
        self.make_http = make_http
        self.guard = guard
        self.context = context

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        if not self.guard.admit():
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        protocol = self.make_http()
        protocol.admitted = True
        handshake: asyncio.Future[None] = loop.create_future()
        layer = sslproto.SSLProtocol(
            loop,
            protocol,
            self.context,
            handshake,
            server_side=True,
            # typeshed says int; asyncio takes any positive number of seconds.
            ssl_handshake_timeout=self.guard.read_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=self.guard.read_timeout,
        )

        def done(future: asyncio.Future[None]) -> None:
            failure = None if future.cancelled() else future.exception()
            if not protocol.made:  # never reached HTTP (failed, timed out, or the client left)
                self.guard.release()
                log.debug("HTTP: TLS handshake failed: %s", type(failure).__name__)

        handshake.add_done_callback(done)
        transport.set_protocol(layer)
        layer.connection_made(transport)
