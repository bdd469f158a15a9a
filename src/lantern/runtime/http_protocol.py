"""uvicorn's httptools protocol with a request read timeout and a connection cap.

uvicorn times out only idle keep-alive connections, and only after a first response: a client
that connects and never finishes its request headers holds its socket forever (slowloris), and
nothing bounds how many such sockets a listener accepts. :class:`GuardedHttpProtocol` adds:

- a cap (:class:`ConnectionGuard`): over ``max_connections`` open connections, a new one gets a
  503 and is closed at once;
- a size limit on a request's line and headers (:data:`MAX_HEADER_BYTES`, else 431): uvicorn
  keeps every header in memory however many arrive;
- a read timeout of ``read_timeout`` seconds. A connection's first request must have arrived
  with all its headers ``read_timeout`` after the connection was made; a later request on a
  keep-alive connection has ``read_timeout`` from when a check first finds its headers
  incomplete (so at most twice that from its first byte); a body must grow between two checks
  (a stall is cut after between one and two ``read_timeout``). Time the server itself is not
  reading (back-pressure, pipelined requests, ``Expect: 100-continue`` not yet answered) does
  not count. On timeout the client gets a 408 when no response is under way, then the
  connection closes; an application still waiting for the body sees ``http.disconnect``.

Cost on the request path: one check per read (is a request in its headers?). The parser
callbacks are uvicorn's own; one ``TimerHandle`` per
connection wakes up every ``read_timeout`` and reads uvicorn's state (``scope`` without a
``method`` = headers incomplete; the cycle's ``more_body`` and ``body`` = body progress). An
earlier version overrode four parser callbacks to timestamp each phase: about 3 us more per
request on the 2-core dev box, for a slightly more precise deadline.

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

_HEADERS, _BODY = 1, 2


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
#: Largest request line plus headers accepted (llhttp has no limit of its own). Counted per read
#: from the first read that finds the request's headers incomplete, so a request may get one
#: read further (the read that started it is not counted).
MAX_HEADER_BYTES = 64 * 1024
_HEADERS_TOO_LARGE = _answer(
    b"431 Request Header Fields Too Large",
    "headers_too_large",
    f"the request line and headers are limited to {MAX_HEADER_BYTES} bytes",
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
        self._timer: asyncio.TimerHandle | None = None
        self._connected_at = 0.0
        # What the last check saw still being read, and until when it may take.
        self._watched: object = None
        self._deadline = 0.0
        self._body_seen: bytearray | None = None
        self._body_len = 0
        self._header_cycle: object = None
        self._header_bytes = 0

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
        self._connected_at = self.loop.time()
        self._timer = self.loop.call_at(self._connected_at + self.guard.read_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened:
            return  # refused: uvicorn never saw it
        self._opened = False
        self.guard.release()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched = self._body_seen = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, counting what arrives while a request's headers are incomplete: beyond
        :data:`MAX_HEADER_BYTES` the client gets 431 and the connection closes (httptools and
        uvicorn would hold every byte: a gigabyte within one read timeout on loopback)."""
        scope = self.scope
        if scope is not None and "method" in scope:  # no request is in its headers
            HttpToolsProtocol.data_received(self, data)
            return
        cycle = self.cycle  # changes when a request's headers complete
        if cycle is not self._header_cycle:
            self._header_cycle, self._header_bytes = cycle, 0
        self._header_bytes += len(data)
        HttpToolsProtocol.data_received(self, data)
        if (
            self._header_bytes > MAX_HEADER_BYTES
            and self.cycle is cycle  # still the same request's headers
            and not self.transport.is_closing()
        ):
            log.debug("HTTP: headers from %s too large, closing", self.client)
            if cycle is None or cycle.response_complete:  # not amid another response
                self.transport.write(_HEADERS_TOO_LARGE)
            self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        # Lantern's HTTP app has no WebSocket routes (MQTT over WebSocket has its own
        # listener): an Upgrade request is an ordinary request, not worth a warning each time.
        log.debug("HTTP: ignored an Upgrade header from %s", self.client)

    # -- the timer: every read_timeout while the connection is open --------------------------------

    def _check(self) -> None:
        """Look at uvicorn's state of the connection: what is being read, and since when."""
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        timeout = self.guard.read_timeout
        wake = now + timeout
        scope, cycle = self.scope, self.cycle
        if self.flow.read_paused:  # Lantern is not reading (back-pressure, pipelining)
            self._watched = self._body_seen = None
        elif scope is None or "method" not in scope:  # a request's headers are not complete
            if cycle is None:  # the connection's first request: due read_timeout after connecting
                self._deadline = self._connected_at + timeout
            elif self._watched is not scope:  # a later request, first seen now
                self._watched, self._deadline = scope, wake
            if now >= self._deadline:
                self._timed_out(_HEADERS)
                return
            wake = self._deadline
        elif (
            cycle is not None
            and cycle.scope is scope
            and cycle.more_body
            and not cycle.response_complete
            and not cycle.waiting_for_100_continue
        ):  # its body is being read: it must have grown since the last look
            body = cycle.body
            if self._watched is cycle and self._body_seen is body and self._body_len == len(body):
                self._timed_out(_BODY)
                return
            self._watched, self._body_seen, self._body_len = cycle, body, len(body)
        else:  # nothing being read: a request in progress, or idle keep-alive (uvicorn's timer)
            self._watched = self._body_seen = None
        self._timer = self.loop.call_at(wake, self._check)

    def _timed_out(self, phase: int) -> None:
        self.guard.timed_out += 1
        log.debug("HTTP: request from %s not received in time, closing", self.client)
        cycle = self.cycle
        if phase == _BODY and cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the application's receive() now says http.disconnect
            cycle.message_event.set()
            self.transport.write(_TIMED_OUT)
        elif phase == _HEADERS and (cycle is None or cycle.response_complete):
            self.transport.write(_TIMED_OUT)
        self._watched = self._body_seen = None
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
                why = type(failure).__name__ if failure is not None else "closed by the client"
                log.debug("HTTP: TLS handshake failed: %s", why)

        handshake.add_done_callback(done)
        transport.set_protocol(layer)
        layer.connection_made(transport)
