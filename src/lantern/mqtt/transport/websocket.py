"""WebSocket listener (RFC 6455) for MQTT: HTTP upgrade on one path, subprotocol ``mqtt``.

The framing is done by the ``websockets`` package's sans-I/O ``ServerProtocol`` (masking from
clients required, ping/pong, close handshake, bounded message size). :class:`WebSocketStream`
sits between a TCP or TLS stream and the MQTT receiver: it is the receiver of the inner stream
and the :class:`ByteStream` of the outer one. Binary messages carry MQTT bytes; a packet may span
messages and a message may hold several packets (the receiver sees a byte stream). A text frame
is refused with close code 1003 ([MQTT-6.0.0-1]). Clients must offer subprotocol ``mqtt`` (or
``mqttv3.1``) [MQTT-6.0.0-3]; the handshake must finish within ``handshake_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence

from websockets.exceptions import InvalidState
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from lantern.mqtt.transport.base import ByteStream, Listener, ReceiverFactory, StreamReceiver
from lantern.mqtt.transport.tcp import start_tcp_listener
from lantern.mqtt.transport.tls import start_tls_listener

log = logging.getLogger("lantern.mqtt.transport")
# The websockets package logs every request's headers at debug level and every connection at
# info level; headers may carry credentials, and per-connection info lines are noise.
_frames_log = logging.getLogger("lantern.mqtt.transport.websocket")
_frames_log.setLevel(logging.WARNING)

SUBPROTOCOLS: Sequence[Subprotocol] = (Subprotocol("mqtt"), Subprotocol("mqttv3.1"))
#: Largest WebSocket message accepted (an MQTT packet is at most 256 MiB; Lantern caps far lower).
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024


class WebSocketStream:
    """The WebSocket layer of one connection (inner stream receiver, outer byte stream)."""

    __slots__ = (
        "_closed_notified",
        "_factory",
        "_inner",
        "_max_message_size",
        "_path",
        "_protocol",
        "_receiver",
        "_text_message",
        "_timeout",
        "_timer",
    )

    def __init__(
        self, factory: ReceiverFactory, path: str, timeout: float, max_message_size: int
    ) -> None:
        self._factory = factory
        self._path = path
        self._timeout = timeout
        self._max_message_size = max_message_size
        self._inner: ByteStream | None = None
        self._protocol: ServerProtocol | None = None
        self._receiver: StreamReceiver | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._text_message = False
        self._closed_notified = False

    # -- StreamReceiver of the inner stream -------------------------------------------------------

    def stream_opened(self, stream: ByteStream) -> None:
        self._inner = stream
        self._protocol = ServerProtocol(
            subprotocols=list(SUBPROTOCOLS),
            max_size=self._max_message_size,
            logger=_frames_log,
        )
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is None:
            return
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._send_pending()

    def stream_closed(self, exc: BaseException | None) -> None:
        self._cancel_timer()
        if self._closed_notified:
            return
        self._closed_notified = True
        if self._receiver is not None:
            self._receiver.stream_closed(exc)

    def pause_writing(self) -> None:
        if self._receiver is not None:
            self._receiver.pause_writing()

    def resume_writing(self) -> None:
        if self._receiver is not None:
            self._receiver.resume_writing()

    # -- ByteStream of the outer stream -----------------------------------------------------------

    @property
    def remote_address(self) -> str:
        return self._inner.remote_address if self._inner is not None else "?"

    @property
    def peer_cert_der(self) -> bytes | None:
        return self._inner.peer_cert_der if self._inner is not None else None

    @property
    def peer_chain_der(self) -> tuple[bytes, ...]:
        return self._inner.peer_chain_der if self._inner is not None else ()

    @property
    def alpn_protocol(self) -> str | None:
        return self._inner.alpn_protocol if self._inner is not None else None

    @property
    def listener(self) -> str:
        return self._inner.listener if self._inner is not None else "?"

    def write(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is None or not data or self.is_closing():
            return
        try:
            protocol.send_binary(data)
        except InvalidState:
            return  # closing: the data would not be delivered anyway
        self._send_pending()

    def write_buffer_size(self) -> int:
        return self._inner.write_buffer_size() if self._inner is not None else 0

    def pause_reading(self) -> None:
        if self._inner is not None:
            self._inner.pause_reading()

    def resume_reading(self) -> None:
        if self._inner is not None:
            self._inner.resume_reading()

    def close(self) -> None:
        protocol, inner = self._protocol, self._inner
        if protocol is None or inner is None or inner.is_closing():
            return
        with contextlib.suppress(InvalidState):  # already closing
            protocol.send_close(CloseCode.NORMAL_CLOSURE)
        self._send_pending()
        inner.close()

    def abort(self) -> None:
        if self._inner is not None:
            self._inner.abort()

    def is_closing(self) -> bool:
        inner, protocol = self._inner, self._protocol
        if inner is None or protocol is None:
            return True
        return inner.is_closing() or protocol.state is not State.OPEN

    # -- internals --------------------------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        protocol = self._protocol
        assert protocol is not None
        path = request.path.split("?", 1)[0]
        if path != self._path:
            response = protocol.reject(404, f"MQTT over WebSocket is served on {self._path}\n")
        else:
            response = protocol.accept(request)
        protocol.send_response(response)
        if response.status_code != 101:
            log.debug(
                "WebSocket handshake from %s refused with %d",
                self.remote_address,
                response.status_code,
            )
            self._cancel_timer()
            return
        self._cancel_timer()
        receiver = self._factory()
        self._receiver = receiver
        self._send_pending()  # the 101 response before anything the receiver writes
        receiver.stream_opened(self)

    def _frame(self, frame: Frame) -> None:
        protocol = self._protocol
        assert protocol is not None
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            opcode = Opcode.TEXT if self._text_message else Opcode.BINARY
        elif opcode in (Opcode.TEXT, Opcode.BINARY):
            self._text_message = opcode is Opcode.TEXT and not frame.fin
        if opcode is Opcode.TEXT:
            protocol.fail(CloseCode.UNSUPPORTED_DATA, "MQTT needs binary frames")
        elif opcode is Opcode.BINARY:
            receiver = self._receiver
            if receiver is not None and frame.data and not self.is_closing():
                receiver.data_received(bytes(frame.data))
        # PING (answered by ServerProtocol), PONG: nothing to do; CLOSE: answered, EOF follows.

    def _send_pending(self) -> None:
        protocol, inner = self._protocol, self._inner
        if protocol is None or inner is None:
            return
        for data in protocol.data_to_send():
            if data:
                inner.write(data)
            else:  # end of stream: the close handshake is done or the connection failed
                inner.close()
                return

    def _timed_out(self) -> None:
        self._timer = None
        log.debug("WebSocket handshake timeout from %s", self.remote_address)
        if self._inner is not None:
            self._inner.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def start_ws_listener(
    name: str,
    host: str,
    port: int,
    factory: ReceiverFactory,
    *,
    path: str = "/mqtt",
    ssl_context: ssl.SSLContext | None = None,
    handshake_timeout: float = 10.0,
    max_connections: int,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    start_serving: bool = True,
    reuse_port: bool = False,
) -> Listener:
    """Serve MQTT over WebSocket on ``host:port`` (0 = a free port), over TLS if ``ssl_context``.

    The receiver is created once the WebSocket upgrade succeeded. ``handshake_timeout`` bounds
    the TLS handshake and, separately, the HTTP upgrade. ``max_message_size`` bounds one
    WebSocket message (close code 1009 beyond it).
    """

    def adapter() -> StreamReceiver:
        return WebSocketStream(factory, path, handshake_timeout, max_message_size)

    if ssl_context is None:
        return await start_tcp_listener(
            name,
            host,
            port,
            adapter,
            max_connections=max_connections,
            start_serving=start_serving,
            reuse_port=reuse_port,
        )
    return await start_tls_listener(
        name,
        host,
        port,
        adapter,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        max_connections=max_connections,
        start_serving=start_serving,
        reuse_port=reuse_port,
    )


__all__ = ["WebSocketStream", "start_ws_listener"]
