"""State of one client connection, its packet loop, sending, closing and timers.

:class:`HandlerBase` is the common ground of the connection handler's parts (one module per
idea, joined in :class:`lantern.mqtt.server.handler.ConnectionHandler`):

* :mod:`~lantern.mqtt.server.connect_flow` - CONNECT, authentication, takeover, DISCONNECT;
* :mod:`~lantern.mqtt.server.publish_flow` - inbound PUBLISH: authorize, intercept, route, ack;
* :mod:`~lantern.mqtt.server.delivery` - outbound PUBLISH and its acknowledgements.

Packets take effect in the order they were received. While the authenticator runs ``_busy``
is set: further packets stay in the decoder and reading is paused. Publish interceptor calls do
NOT stop the connection: they are pipelined (see :mod:`~lantern.mqtt.server.publish_flow`);
their outcomes, and the packets that must not overtake them, wait in ``_pending`` and are
applied strictly in receive order. Packets stop being taken from the decoder (and reading is
paused) once more than the advertised Receive Maximum entries are pending, or while the write
buffer is above its high-water mark, so input stays bounded.

No task per connection: the one timer is a loop.call_at handle (CONNECT timeout, then keep
alive and the end of the credentials' validity, whichever comes first); a task exists only while
an authenticator or interceptor coroutine runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from lantern.mqtt.broker import Message
from lantern.mqtt.connection import ConnectionState, ServerConnection
from lantern.mqtt.errors import LocalProtocolError, ProtocolError
from lantern.mqtt.packets import Connack, Disconnect, Packet
from lantern.mqtt.primitives import MQTT5
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.stats import ListenerStats

if TYPE_CHECKING:
    from lantern.mqtt.broker import Delivery, Session
    from lantern.mqtt.server.publish_flow import PendingInbound
    from lantern.mqtt.server.server import MQTTServer
    from lantern.mqtt.transport import ByteStream

__all__ = ["HandlerBase", "log"]

log = logging.getLogger("lantern.mqtt.server")

# Counters of a handler whose stream is not open yet (replaced in ``stream_opened``).
_NOT_OPEN = ListenerStats()


class HandlerBase:
    """Per-connection state shared by the handler's parts (all slots are declared here), and
    the :class:`~lantern.mqtt.hooks.ClientHandle` API the hooks see."""

    __slots__ = (
        "_busy",
        "_client_id",
        "_closed",
        "_conn",
        "_deferred",
        "_disconnect_expiry",
        "_expiry_cap",
        "_fast_path",
        "_gone",
        "_identity",
        "_keepalive",
        "_last_activity",
        "_level",
        "_lstats",
        "_max_out",
        "_pending",
        "_reason",
        "_server",
        "_stream",
        "_task",
        "_timer",
        "_valid_until",
        "_will_on_close",
        "_write_paused",
        "session",
    )

    def __init__(self, server: MQTTServer) -> None:
        self._server = server
        cfg = server.config
        self._conn = ServerConnection(
            max_packet_size=cfg.max_packet_size,
            topic_alias_maximum=cfg.topic_alias_maximum,
            receive_maximum=cfg.receive_maximum,
        )
        self._stream: ByteStream | None = None
        self._lstats = _NOT_OPEN
        self.session: Session | None = None
        self._client_id = ""
        self._identity: object = None
        self._level = 4
        self._busy = False
        self._closed = False
        self._gone = False  # stream_closed was called
        self._write_paused = False
        self._will_on_close = True
        self._disconnect_expiry: int | None = None
        self._expiry_cap = cfg.session_expiry_max  # the most a DISCONNECT may set
        self._keepalive = 0.0
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._valid_until: float | None = None  # wall clock (epoch seconds); None = no end
        self._task: asyncio.Task[None] | None = None
        self._fast_path = True
        self._max_out: int | None = None
        self._reason = "connection lost"
        # Inbound publishes whose outcome is not applied yet, in receive order (created on the
        # first intercepted PUBLISH).
        self._pending: deque[PendingInbound] | None = None
        # QoS 1/2 deliveries waiting for the write buffer to drain (see server.delivery).
        self._deferred: deque[Delivery] | None = None

    # -- ClientHandle (what hooks see) ---------------------------------------------------

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def identity(self) -> object:
        return self._identity

    @property
    def protocol_level(self) -> int:
        return self._level

    @property
    def remote_address(self) -> str:
        return "" if self._stream is None else self._stream.remote_address

    def deliver(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> None:
        """Send to this connection only (through its session's window and queue)."""
        session = self.session
        if session is None or self._closed:
            return
        now = self._server.loop.time()
        message = Message(topic, payload, qos, False, properties, sender=None, now=now)
        self._server.dispatch(self._server.broker.deliver_direct(session, message, qos, now), now)

    def close(self, reason_code: ReasonCode, properties: Properties = EMPTY_PROPERTIES) -> None:
        """DISCONNECT with ``reason_code`` (and ``properties``: MQTT 5, after CONNACK) and
        close."""
        self._shutdown(reason_code, f"closed by server ({reason_code.name})", properties)

    def abort(self) -> None:
        """Close now, without flushing."""
        self._closed = True
        if self._stream is not None:
            self._stream.abort()

    # -- the packet loop -----------------------------------------------------------------

    def _process(self) -> None:
        conn = self._conn
        # More than Receive Maximum pending: stop taking packets. One beyond the window is
        # still taken, so a client overrunning it gets DISCONNECT 0x93 from the codec.
        limit = conn.receive_maximum
        packets_in = self._server.stats.packets_in
        while not self._busy and not self._closed:
            pending = self._pending
            if pending is not None and len(pending) > limit:
                break
            try:
                packet = conn.next_event()
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            if packet is None:
                return
            packets_in[type(packet)] += 1
            try:
                self._handle(packet)
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
        if not self._closed and self._stream is not None:
            self._stream.pause_reading()

    def _handle(self, packet: Packet) -> None:
        """Act on one packet from the client (the handler's dispatch)."""
        raise NotImplementedError

    def _handle_in_order(self, packet: Packet) -> None:
        """Act on a packet that waited in ``_pending`` for earlier publishes (its turn now)."""
        raise NotImplementedError

    def _resume(self) -> None:
        """An awaited step finished: continue with buffered packets, then read again."""
        self._busy = False
        self._task = None
        self._continue()

    def _continue(self) -> None:
        """Take the packets waiting in the decoder, then read again unless still blocked."""
        if self._closed:
            return
        self._process()
        if self._closed or self._busy or self._write_paused:
            return
        pending = self._pending
        if pending is None or len(pending) <= self._conn.receive_maximum:
            assert self._stream is not None
            self._stream.resume_reading()

    # -- sending -------------------------------------------------------------------------

    def _send(self, packet: Packet) -> None:
        stream = self._stream
        if stream is None or stream.is_closing():
            return
        try:
            data = self._conn.send(packet)
        except LocalProtocolError:
            log.debug("not sending %s in state %s", type(packet).__name__, self._conn.state)
            return
        if data:
            self._server.stats.packets_out[type(packet)] += 1
            self._lstats.bytes_out += len(data)
            stream.write(data)

    # -- closing -------------------------------------------------------------------------

    def _protocol_error(self, exc: ProtocolError) -> None:
        log.info("protocol error from %s: %s", self.remote_address, exc)
        self._reason = f"protocol error ({exc.reason_code.name})"
        conn = self._conn
        if self.session is None:
            # Before CONNACK: answer only an unsupported version ([MQTT-3.1.2-2]), with the
            # level the codec chose to encode it.
            if exc.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
                self._send(Connack(False, ReasonCode.UNSUPPORTED_PROTOCOL_VERSION))
            elif conn.protocol_level == MQTT5 and conn.state is ConnectionState.ERROR:
                self._send(Connack(False, exc.reason_code))
        elif self._level == MQTT5:
            self._send(Disconnect(exc.reason_code))
        self._close_stream()

    def _shutdown(
        self, code: ReasonCode, why: str, properties: Properties = EMPTY_PROPERTIES
    ) -> None:
        if self._closed:
            return
        self._reason = why
        if self._level == MQTT5 and self._conn.state is ConnectionState.CONNECTED:
            self._send(Disconnect(code, properties))
        self._close_stream()

    def _end_session(self) -> None:
        """Hand the session back to the broker (will, expiry) once the stream is gone and
        every pending inbound publish has been applied (so a will never overtakes them)."""
        session = self.session
        if session is None:
            return
        self.session = None
        server = self._server
        now = server.loop.time()
        deliveries = server.broker.disconnect(
            session,
            self,
            publish_will=self._will_on_close,
            expiry_interval=self._disconnect_expiry,
            now=now,
        )
        server.dispatch(deliveries)
        server.arm_timer()
        if server.events is not None:
            try:
                server.events.disconnected(self, self._reason)
            except Exception:
                log.exception("ConnectionEvents.disconnected failed")

    def _close_stream(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stream is not None:
            self._stream.close()

    # -- timers --------------------------------------------------------------------------

    def _connect_timeout(self) -> None:
        self._timer = None
        if self.session is None and not self._closed:
            limit = self._server.config.connect_timeout
            if self._task is not None:  # CONNECT came; its authentication did not finish
                log.info(
                    "CONNECT from %s (client %r) not authenticated within %g s; closing",
                    self.remote_address,
                    self._client_id,
                    limit,
                )
                self._reason = "authentication timeout"
            else:
                log.info("no CONNECT from %s within %g s; closing", self.remote_address, limit)
                self._reason = "CONNECT timeout"
            self._close_stream()

    def end_at(self, valid_until: float) -> None:
        """Close this (connected) connection at ``valid_until`` (epoch seconds, wall clock):
        its credentials end then. Shares the keep alive timer."""
        self._valid_until = valid_until
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._check_alive()

    def _check_alive(self) -> None:
        if self._closed:
            return
        loop = self._server.loop
        now = loop.time()
        deadline = self._last_activity + self._keepalive
        valid_until = self._valid_until
        if valid_until is not None:
            left = valid_until - time.time()  # wall clock: certificates end on it
            if left <= 0:
                self._timer = None
                log.info(
                    "closing %s (client %r): credentials expired",
                    self.remote_address,
                    self._client_id,
                )
                self._shutdown(ReasonCode.ADMINISTRATIVE_ACTION, "credentials expired")
                return
            if now + left < deadline:
                self._timer = loop.call_at(now + left, self._check_alive)
                return
        if now >= deadline:
            self._timer = None
            self._shutdown(ReasonCode.KEEP_ALIVE_TIMEOUT, "keep alive timeout")
        else:
            self._timer = loop.call_at(deadline, self._check_alive)
