"""State of one client connection, its packet loop, sending, closing and timers.

:class:`HandlerBase` is the common ground of the connection handler's parts (one module per
idea, joined in :class:`lantern.mqtt.server.handler.ConnectionHandler`):

* :mod:`~lantern.mqtt.server.connect_flow` - CONNECT, authentication, takeover, DISCONNECT;
* :mod:`~lantern.mqtt.server.publish_flow` - inbound PUBLISH: authorize, intercept, route, ack;
* :mod:`~lantern.mqtt.server.delivery` - outbound PUBLISH and its acknowledgements.

Packets are processed in order; while an awaitable step runs (authentication, a publish
interceptor) ``_busy`` is set, further packets stay in the decoder and reading is paused, so
input stays bounded by one packet plus one read.

No task per connection: the one timer is a loop.call_at handle (CONNECT timeout, then keep
alive); a task exists only while an authenticator or interceptor coroutine runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lantern.mqtt.broker import Message
from lantern.mqtt.connection import ConnectionState, ServerConnection
from lantern.mqtt.errors import LocalProtocolError, ProtocolError
from lantern.mqtt.packets import Connack, Disconnect, Packet
from lantern.mqtt.primitives import MQTT5
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode

if TYPE_CHECKING:
    from lantern.mqtt.broker import Session
    from lantern.mqtt.server.server import MQTTServer
    from lantern.mqtt.transport import ByteStream

__all__ = ["HandlerBase", "log"]

log = logging.getLogger("lantern.mqtt.server")


class HandlerBase:
    """Per-connection state shared by the handler's parts (all slots are declared here), and
    the :class:`~lantern.mqtt.hooks.ClientHandle` API the hooks see."""

    __slots__ = (
        "_busy",
        "_client_id",
        "_closed",
        "_conn",
        "_disconnect_expiry",
        "_fast_path",
        "_identity",
        "_keepalive",
        "_last_activity",
        "_level",
        "_max_out",
        "_reason",
        "_server",
        "_stream",
        "_task",
        "_timer",
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
        self.session: Session | None = None
        self._client_id = ""
        self._identity: object = None
        self._level = 4
        self._busy = False
        self._closed = False
        self._write_paused = False
        self._will_on_close = True
        self._disconnect_expiry: int | None = None
        self._keepalive = 0.0
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._fast_path = True
        self._max_out: int | None = None
        self._reason = "connection lost"

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

    def close(self, reason_code: ReasonCode) -> None:
        """DISCONNECT with ``reason_code`` (MQTT 5, after CONNACK) and close."""
        self._shutdown(reason_code, f"closed by server ({reason_code.name})")

    def abort(self) -> None:
        """Close now, without flushing."""
        self._closed = True
        if self._stream is not None:
            self._stream.abort()

    # -- the packet loop -----------------------------------------------------------------

    def _process(self) -> None:
        conn = self._conn
        while not self._busy and not self._closed:
            try:
                packet = conn.next_event()
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            if packet is None:
                return
            try:
                self._handle(packet)
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
        if self._busy and self._stream is not None:
            self._stream.pause_reading()

    def _handle(self, packet: Packet) -> None:
        """Act on one packet from the client (the handler's dispatch)."""
        raise NotImplementedError

    def _resume(self) -> None:
        """An awaited step finished: continue with buffered packets, then read again."""
        self._busy = False
        self._task = None
        if self._closed:
            return
        self._process()
        if not self._busy and not self._closed and not self._write_paused:
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

    def _shutdown(self, code: ReasonCode, why: str) -> None:
        if self._closed:
            return
        self._reason = why
        if self._level == MQTT5 and self._conn.state is ConnectionState.CONNECTED:
            self._send(Disconnect(code))
        self._close_stream()

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
            log.info("no CONNECT from %s in time; closing", self.remote_address)
            self._reason = "CONNECT timeout"
            self._close_stream()

    def _check_alive(self) -> None:
        if self._closed:
            return
        loop = self._server.loop
        deadline = self._last_activity + self._keepalive
        if loop.time() >= deadline:
            self._timer = None
            self._shutdown(ReasonCode.KEEP_ALIVE_TIMEOUT, "keep alive timeout")
        else:
            self._timer = loop.call_at(deadline, self._check_alive)
