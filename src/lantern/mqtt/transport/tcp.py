"""Plain TCP listener (development / behind a TLS-terminating proxy; off unless configured)."""

from __future__ import annotations

from lantern.mqtt.transport.base import Listener, ReceiverFactory
from lantern.mqtt.transport.listener import Connection, StreamListener


class TcpConnection(Connection):
    """A plain TCP stream: bytes in, bytes out."""

    __slots__ = ()

    def _start(self) -> None:
        self._open_stream()

    def buffer_updated(self, nbytes: int) -> None:
        receiver = self._receiver
        if receiver is not None and not self._closing:
            receiver.data_received(self._listener.recv_view[:nbytes].tobytes())

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)


async def start_tcp_listener(
    name: str,
    host: str,
    port: int,
    factory: ReceiverFactory,
    *,
    max_connections: int,
    start_serving: bool = True,
    reuse_port: bool = False,
) -> Listener:
    """Listen on ``host:port`` (0 = a free port) and give each connection a new receiver.

    Over ``max_connections`` open connections, a new connection is accepted and closed at once.
    """
    listener = StreamListener(name, factory, max_connections=max_connections)
    await listener.bind(
        host,
        port,
        lambda: TcpConnection(listener),
        start_serving=start_serving,
        reuse_port=reuse_port,
    )
    return listener
