"""A lean HTTP/2 client for the APNs hot path: persistent TLS connections, hand-written framing.

Why not httpx here: profiling ``POST /push`` showed httpx/httpcore's HTTP/2 path (anyio streams,
per-request locks and cancel scopes, one TLS write per frame) costing ~1.3-1.5 ms of CPU per
request, most of a push. This client is an :class:`asyncio.Protocol` instead, and coalesces the
frames of the streams started in one loop iteration into few TLS writes (one per 16 streams).
httpx (with h2) stays in use for FCM and Slack.

Why not ``h2`` either: driven directly, h2 (with hyperframe: a state machine per stream, an object
per frame and per event, flags, enums, validation) still cost a third of the relay's CPU per
push, ~60 µs per request+response on the client side. Framing one request per stream is simple
(RFC 9113), so :mod:`lantern.push.providers.h2wire` does it by hand: ~15 µs, of which ~12 are
HPACK, the intricate part, which stays with the ``hpack`` library (figures: ``bench/h2wire.py``;
~4 µs of the gain come from sending the per-device ``:path`` without indexing it).

Contract of :class:`H2Client`:

* ``await request(path, headers, body)`` sends ``POST path`` and returns an :class:`H2Response`
  (any status), or raises :class:`H2Error` when no response could be had. Every ``H2Error`` is
  safe to retry as far as the client knows: the server did not answer the stream (connect
  failure, timeout, reset, GOAWAY, connection lost mid-stream). ``reason`` says which; after a
  GOAWAY it is the server's JSON ``reason`` when it sent one (APNs does).
* Connections (at most ``max_connections``) open lazily, TLS with ALPN ``h2`` only, and become
  usable once the server's first SETTINGS frame arrived. Streams multiplex on the first
  connection with room under the server's ``MAX_CONCURRENT_STREAMS`` (which may change at any
  time, as APNs does after the first authenticated request); a new connection opens only when all
  are full, and requests wait for room when the pool is at its limit. Concurrent requests that
  find no connection share one connection attempt.
* Flow control: request bodies are sent as the stream and connection windows allow (the rest
  waits for WINDOW_UPDATE); received data is acknowledged so the server's windows stay open.
* A GOAWAY or a lost connection fails that connection's in-flight streams with ``H2Error`` and
  removes it from the pool; the next request opens a fresh one. (Streams the GOAWAY said the
  server would still finish are failed too: a retry may then deliver a notification twice, which
  is the safer side for reminders.)
* ``request_timeout`` bounds waiting for room, connecting and the response; a timed-out stream is
  reset (RST_STREAM CANCEL) and the connection is probed with a PING: without an answer within
  ``request_timeout`` it is retired (``Unresponsive``). A cancelled caller resets its stream.

Header names must be lowercase bytes and values valid HTTP/2 field values: headers are encoded as
given, without validation, so callers validate what they put in them (the APNs provider does).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from hpack import NeverIndexedHeaderTuple

from lantern import jsonlimits
from lantern.push.errors import PushError
from lantern.push.providers import h2wire
from lantern.push.providers.h2wire import H2Wire

Header = tuple[bytes, bytes]

# Responses are tiny; a large window means the server never waits for our WINDOW_UPDATEs.
_RECEIVE_WINDOW = 1 << 20
# Frames are written at the end of the loop iteration that made them, or as soon as this many
# streams are waiting, so the server can start on the first ones while the rest are still being
# prepared. Writing a whole burst at once made relay and server take turns at being idle: under
# a closed loop of 256 callers that cost ~30 % of the throughput (bench/push.py).
_FLUSH_EVERY = 16


class H2Error(PushError):
    """No response: ``reason`` is a short code (ConnectError, Timeout, GoAway or the server's
    GOAWAY reason, ConnectionLost, StreamReset, ProtocolError, Closed)."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason if detail is None else f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class H2Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _Stream:
    __slots__ = ("body", "future", "headers", "sid", "status", "timer")

    def __init__(self, sid: int, future: asyncio.Future[H2Response]) -> None:
        self.sid = sid
        self.future = future
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.timer: asyncio.TimerHandle | None = None


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection; ``ready`` resolves on the server's first SETTINGS frame."""

    def __init__(self, client: H2Client, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.wire = H2Wire(_RECEIVE_WINDOW)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.streams: dict[int, _Stream] = {}
        self.max_streams = 1  # until the server's SETTINGS say more
        self.usable = False  # takes new streams
        self.closed = False
        self._flush_scheduled = False
        self._unflushed = 0
        self._probe: asyncio.TimerHandle | None = None  # PING sent after a timeout

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same interface.
        self.transport = cast(asyncio.Transport, transport)
        self.wire.initiate()
        self.transport.write(self.wire.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        streams = self.streams
        for event in self.wire.receive(data):
            kind = event[0]
            if kind == h2wire.RESPONSE:
                stream = streams.get(event[1])
                if stream is not None:
                    stream.status = event[2]
                    for name, value in event[3]:
                        stream.headers[name.decode()] = value.decode(errors="replace")
            elif kind == h2wire.ENDED:
                stream = streams.pop(event[1], None)
                if stream is not None:
                    self._finish(stream, H2Response(stream.status, stream.headers, stream.body))
            elif kind == h2wire.DATA:
                stream = streams.get(event[1])
                if stream is not None:
                    stream.body += event[2]
            elif kind == h2wire.RESET:
                stream = streams.pop(event[1], None)
                if stream is not None:
                    self._finish(stream, H2Error("StreamReset", h2wire.error_name(event[2])))
            elif kind == h2wire.SETTINGS:
                self.max_streams = min(self.wire.max_concurrent_streams, 1 << 20)
                if not self.ready.done():
                    self.usable = True
                    self.ready.set_result(None)
                self.client._room_changed(everyone=True)
            elif kind == h2wire.PING_ACK:
                if self._probe is not None:
                    self._probe.cancel()
                    self._probe = None
            elif kind == h2wire.GOAWAY:
                self._terminate(_goaway_reason(event[3]), None)
                return
            elif kind == h2wire.ERROR:
                self._terminate("ProtocolError", event[2])  # after writing our GOAWAY
                return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._terminate("ConnectionLost", str(exc) if exc else None)

    # --- streams ---------------------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        return self.usable and len(self.streams) < self.max_streams

    def start(self, headers: Sequence[Header], body: bytes, timeout: float) -> _Stream:
        """Open a stream and queue its frames (written at the end of this loop iteration)."""
        try:
            sid = self.wire.send_request(headers, body)
        except h2wire.NoStreamIdsError:
            self.usable = False  # after 2^30 streams: let the pool open a fresh connection
            raise H2Error("NoStreamIds") from None
        except h2wire.TooManyStreamsError as exc:  # the server just lowered its stream limit
            raise H2Error("ProtocolError", str(exc)) from None
        stream = _Stream(sid, self.loop.create_future())
        self.streams[sid] = stream
        stream.timer = self.loop.call_later(timeout, self._timed_out, sid)
        self._unflushed += 1
        if self._unflushed >= _FLUSH_EVERY:
            self._flush()
        else:
            self._schedule_flush()
        return stream

    def abandon(self, stream: _Stream) -> None:
        """The caller went away (cancelled): reset its stream if still open."""
        if self.streams.get(stream.sid) is stream:
            self._reset(stream.sid)
            if stream.timer is not None:
                stream.timer.cancel()
            self.client._room_changed()

    def _timed_out(self, sid: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.timer = None
            self._reset(sid)
            self._finish(stream, H2Error("Timeout", "no response in time"))
            # Slow stream or dead connection (a silent NAT drop never closes the socket)? Ask
            # with a PING; no answer in time retires the connection so retries go elsewhere.
            if self._probe is None and not self.closed:
                self.wire.ping(b"lantern?")
                self._probe = self.loop.call_later(
                    self.client.request_timeout, self._terminate, "Unresponsive", "no PING answer"
                )
            self._flush()

    def _reset(self, sid: int) -> None:
        self.streams.pop(sid, None)
        if not self.closed:
            self.wire.reset_stream(sid, h2wire.CANCEL)
            self._schedule_flush()

    def _finish(self, stream: _Stream, result: H2Response | H2Error) -> None:
        if stream.timer is not None:
            stream.timer.cancel()
        if not stream.future.done():
            if isinstance(result, H2Error):
                stream.future.set_exception(result)
            else:
                stream.future.set_result(result)
        self.client._room_changed()

    # --- writing and closing ---------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        data = self.wire.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _terminate(self, reason: str, detail: str | None) -> None:
        """Fail every in-flight stream as retryable, leave the pool, close the socket."""
        if self.closed:
            return
        self.closed = True
        self.usable = False
        if self._probe is not None:
            self._probe.cancel()
        streams, self.streams = self.streams, {}
        if not self.ready.done():
            self.ready.set_exception(H2Error(reason, detail))
            self.ready.exception()  # retrieved: the opener reports it
        for stream in streams.values():
            if stream.timer is not None:
                stream.timer.cancel()
            if not stream.future.done():
                stream.future.set_exception(H2Error(reason, detail))
        self.client._forget(self)
        if self.transport is not None:
            self._flush()  # a GOAWAY of ours, if any
            self.transport.close()

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close; in-flight streams fail with ``Closed``."""
        if not self.closed:
            self.wire.close()
            self._terminate("Closed", None)


def _goaway_reason(data: bytes | None) -> str:
    """APNs puts ``{"reason": "..."}`` in the GOAWAY debug data."""
    if data:
        with contextlib.suppress(ValueError, AttributeError):
            reason = jsonlimits.loads(data).get("reason")
            if isinstance(reason, str) and reason.isidentifier():
                return reason
    return "GoAway"


class H2Client:
    """A small pool of HTTP/2 connections to one ``host:port`` (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        *,
        max_connections: int = 4,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.ssl_context.set_alpn_protocols(["h2"])
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.connections_opened = 0  # observable by tests and metrics
        self._authority = (host if port == 443 else f"{host}:{port}").encode()
        self._connections: list[_Connection] = []
        self._connecting: asyncio.Task[_Connection] | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def request(self, path: str, headers: Iterable[Header], body: bytes) -> H2Response:
        """``POST path`` with ``headers`` and ``body``; see the module docstring."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        connection = await self._acquire(deadline)
        request_headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", self._authority),
            # A path names one device (its token): never indexed, so it neither sits in the
            # HPACK table nor evicts the entries every request reuses (the JWT, the topic).
            NeverIndexedHeaderTuple(b":path", path.encode()),
            *headers,
        ]
        stream = connection.start(request_headers, body, max(0.0, deadline - loop.time()))
        try:
            return await stream.future
        except asyncio.CancelledError:
            connection.abandon(stream)
            raise

    async def _acquire(self, deadline: float) -> _Connection:
        """A connection with room for one more stream (opening one if allowed)."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise H2Error("Closed")
            for connection in self._connections:
                if connection.has_room:
                    return connection
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise H2Error("Timeout", "no connection had room in time")
            if self._connecting is None and len(self._connections) < self.max_connections:
                task = loop.create_task(self._open(), name="apns-h2-connect")
                task.add_done_callback(_retrieve)
                self._connecting = task
            if self._connecting is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._connecting), remaining)
                except TimeoutError:
                    raise H2Error("Timeout", "connecting took too long") from None
                except H2Error as exc:
                    raise H2Error(exc.reason, str(exc)) from None
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                raise H2Error("Timeout", "no stream became free in time") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    transport, connection = await loop.create_connection(
                        lambda: _Connection(self, loop),
                        self.host,
                        self.port,
                        ssl=self.ssl_context,
                        server_hostname=self.host,
                    )
                    self.connections_opened += 1
                    ssl_object = transport.get_extra_info("ssl_object")
                    if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                        transport.close()
                        raise H2Error("NoHTTP2", "the server did not agree to HTTP/2 (ALPN h2)")
                    self._connections.append(connection)
                    try:
                        await connection.ready
                    except BaseException:
                        connection.close()
                        raise
            except TimeoutError:
                raise H2Error("ConnectTimeout", f"{self.host}:{self.port}") from None
            except (OSError, ssl.SSLError) as exc:
                raise H2Error("ConnectError", f"{self.host}:{self.port}: {exc}") from None
            return connection
        finally:
            self._connecting = None
            self._room_changed(everyone=True)

    def _room_changed(self, everyone: bool = False) -> None:
        """A stream ended or a connection came or went: wake one waiter (or all)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    def _forget(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        self._room_changed(everyone=True)

    async def aclose(self) -> None:
        """Close every connection; in-flight and waiting requests fail with ``Closed``."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        for connection in list(self._connections):
            connection.close()
        self._room_changed(everyone=True)
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a connect task's exception as seen (every waiter reports it themselves)."""
    if not task.cancelled():
        task.exception()
