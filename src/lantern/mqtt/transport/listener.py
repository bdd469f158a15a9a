"""Listener and connection machinery shared by the TCP and TLS transports.

Memory matters here (thousands of idle device connections per process), so:

- connections are ``__slots__`` classes implementing :class:`asyncio.BufferedProtocol`; the event
  loop reads into ONE receive buffer owned by the listener (a listener lives on one loop, and a
  read is consumed synchronously before the next one), so nothing is held per connection
  between reads;
- writes are coalesced: ``write()`` appends to a short per-connection list that exists only
  until the end of the current loop iteration, when one callback per listener flushes every
  connection that wrote (one ``send`` per connection per iteration instead of one per packet).

Write flow control: the receiver's ``pause_writing`` is called when queued bytes (coalescing list
plus the loop transport's buffer) exceed :data:`WRITE_HIGH_WATER`, and ``resume_writing`` when
they drop to :data:`WRITE_LOW_WATER`. The loop transport's own limits are set to
``WRITE_LOW_WATER`` so that it reports every crossing of the low-water mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from lantern.mqtt.transport.base import (
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    ReceiverFactory,
    StreamReceiver,
)

log = logging.getLogger("lantern.mqtt.transport")

#: Size of the listener-wide receive buffer the loop reads into.
RECV_BUFFER_SIZE = 64 * 1024


class StreamListener:
    """A bound server socket producing connections of one kind (implements ``Listener``)."""

    def __init__(
        self,
        name: str,
        factory: ReceiverFactory,
        *,
        max_connections: int,
        handshake_timeout: float | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if handshake_timeout is not None and handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be > 0, got {handshake_timeout}")
        self.name = name
        self.factory = factory
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        #: Connections refused because ``max_connections`` was reached (for metrics/tests).
        self.refused_connections = 0
        #: False while the node is not ready (cluster: database or NATS lost): every new
        #: connection is closed at once, open ones are left alone.
        self.accepting = True
        self.recv_buffer = bytearray(RECV_BUFFER_SIZE)
        self.recv_view = memoryview(self.recv_buffer)
        self._count = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: list[Connection] = []
        self._flush_scheduled = False

    async def bind(
        self,
        host: str,
        port: int,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        start_serving: bool = True,
        reuse_port: bool = False,
    ) -> None:
        """Bind and (unless ``start_serving`` is False) start accepting; called once by the
        ``start_*_listener`` functions. ``reuse_port`` shares the port with other processes
        (the workers of ``lantern serve --workers``; the kernel spreads connections)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            protocol_factory,
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
            start_serving=start_serving,
        )

    async def start_serving(self) -> None:
        """Start accepting on the bound socket."""
        assert self._server is not None, "listener not bound"
        await self._server.start_serving()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "listener not bound"
        return self._loop

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "listener not bound"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting. Open connections stay up: their owner closes them."""
        if self._server is not None:
            # Not ``wait_closed()``: on uvloop (and Python >= 3.12) it waits for every
            # connection to end, which is the owner's business, not ours.
            self._server.close()
            self._server = None
            await asyncio.sleep(0)

    def connection_count(self) -> int:
        """Open connections, including those still in a handshake."""
        return self._count

    # -- used by connections -------------------------------------------------------------------

    def admit(self) -> bool:
        """Count a new connection, or say no when the limit is reached or the listener is
        not accepting."""
        if not self.accepting or self._count >= self.max_connections:
            self.refused_connections += 1
            return False
        self._count += 1
        return True

    def release(self) -> None:
        self._count -= 1

    def schedule_flush(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


class Connection(asyncio.BufferedProtocol):
    """Common part of an accepted connection: admission, coalesced writes, flow control.

    Subclasses implement ``_send(data)`` (hand bytes to the loop transport, encrypting if
    needed), ``_start()`` (called on an admitted connection) and ``buffer_updated``.
    """

    __slots__ = (
        "_closed_notified",
        "_closing",
        "_listener",
        "_pending",
        "_pending_size",
        "_read_paused",
        "_receiver",
        "_transport",
        "_transport_paused",
        "_write_paused",
    )

    def __init__(self, listener: StreamListener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._receiver: StreamReceiver | None = None
        self._pending: list[bytes] | None = None
        self._pending_size = 0
        self._closing = False
        self._closed_notified = False
        self._read_paused = False
        self._write_paused = False
        self._transport_paused = False

    # -- asyncio protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same methods.
        transport = cast(asyncio.Transport, transport)
        if not self._listener.admit():
            log.debug(
                "listener %s: connection limit %d reached, refusing %s",
                self._listener.name,
                self._listener.max_connections,
                _peer(transport),
            )
            self._closing = True
            self._closed_notified = True  # never opened: nothing to notify
            transport.abort()
            return
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_LOW_WATER, low=WRITE_LOW_WATER)
        self._start()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._listener.recv_view

    def eof_received(self) -> bool:
        return False  # half-closed MQTT connections are not useful: close

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._transport is None:
            return  # refused at admission
        self._listener.release()
        self._closing = True
        self._pending = None
        self._pending_size = 0
        self._cancel_timers()
        self._notify_closed(exc)

    def pause_writing(self) -> None:
        self._transport_paused = True

    def resume_writing(self) -> None:
        self._transport_paused = False
        self._update_write_flow()

    # -- ByteStream ----------------------------------------------------------------------------

    @property
    def remote_address(self) -> str:
        return _peer(self._transport)

    @property
    def listener(self) -> str:
        return self._listener.name

    @property
    def peer_cert_der(self) -> bytes | None:
        return None

    @property
    def peer_chain_der(self) -> tuple[bytes, ...]:
        return ()

    @property
    def alpn_protocol(self) -> str | None:
        return None

    def write(self, data: bytes) -> None:
        if self._closing or not data:
            return
        if self._pending is None:
            self._pending = [data]
            self._listener.schedule_flush(self)
        else:
            self._pending.append(data)
        self._pending_size += len(data)
        if not self._write_paused and self._pending_size > WRITE_HIGH_WATER:
            self._update_write_flow()

    def write_buffer_size(self) -> int:
        transport = self._transport
        size = self._pending_size
        if transport is not None and not transport.is_closing():
            size += transport.get_write_buffer_size()
        return size

    def pause_reading(self) -> None:
        if not self._read_paused:
            self._read_paused = True
            if self._transport is not None and not self._closing:
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if self._transport is not None and not self._closing:
                self._transport.resume_reading()
                self._reading_resumed()

    def close(self) -> None:
        if self._closing or self._transport is None:
            return
        self.flush()
        self._closing = True
        self._cancel_timers()
        self._close_transport()

    def abort(self) -> None:
        if self._transport is None:
            return
        self._closing = True
        self._pending = None
        self._pending_size = 0
        self._cancel_timers()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._closing

    # -- internals -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the coalesced writes to the transport (called once per loop iteration)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_size = 0
        if self._closing or self._transport is None:
            return
        self._send(pending[0] if len(pending) == 1 else b"".join(pending))
        self._update_write_flow()

    def _update_write_flow(self) -> None:
        receiver = self._receiver
        if receiver is None or self._closing:
            return
        size = self.write_buffer_size()
        if not self._write_paused:
            if size > WRITE_HIGH_WATER:
                self._write_paused = True
                receiver.pause_writing()
        elif not self._transport_paused and size <= WRITE_LOW_WATER and self._pending is None:
            self._write_paused = False
            receiver.resume_writing()

    def _open_stream(self) -> None:
        """Create the receiver and tell it the stream is open."""
        receiver = self._listener.factory()
        self._receiver = receiver
        receiver.stream_opened(self)

    def _notify_closed(self, exc: BaseException | None) -> None:
        if self._closed_notified:
            return
        self._closed_notified = True
        receiver = self._receiver
        if receiver is not None:
            receiver.stream_closed(exc)

    def _start(self) -> None:
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _close_transport(self) -> None:
        assert self._transport is not None
        self._transport.close()

    def _cancel_timers(self) -> None:
        """Cancel handshake timers (subclasses that have them)."""

    def _reading_resumed(self) -> None:
        """Deliver data that was buffered while reading was paused (subclasses)."""


def _peer(transport: asyncio.BaseTransport | None) -> str:
    if transport is None:
        return "?"
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer) if peer else "?"
