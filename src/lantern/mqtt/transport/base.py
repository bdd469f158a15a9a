"""The byte-transport interfaces between listeners and the MQTT connection handler.

A listener accepts sockets, peels off TLS and/or WebSocket framing and hands each accepted
connection to a :class:`StreamReceiver` (created by a :data:`ReceiverFactory`) as a
:class:`ByteStream`. The receiver sees only MQTT bytes. For TLS listeners the receiver is created
only after the handshake succeeded, so ``peer_cert_der`` is available in ``stream_opened``.

Call order on a receiver: ``stream_opened`` once, then any number of ``data_received`` /
``pause_writing`` / ``resume_writing``, then ``stream_closed`` exactly once (``exc`` is None on a
clean close, whether initiated by the peer or by ``close()``/``abort()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = [
    "WRITE_HIGH_WATER",
    "WRITE_LOW_WATER",
    "ByteStream",
    "Listener",
    "ReceiverFactory",
    "StreamReceiver",
]

#: Write-buffer size (bytes not yet handed to the kernel) above which ``pause_writing`` is called.
WRITE_HIGH_WATER = 64 * 1024
#: Size below which ``resume_writing`` is called after a pause.
WRITE_LOW_WATER = 16 * 1024


class ByteStream(Protocol):
    """One accepted connection, after TLS (if any) and WebSocket (if any) are peeled off."""

    @property
    def remote_address(self) -> str:
        """``host:port`` of the peer (for logs; never includes secrets)."""
        ...

    @property
    def peer_cert_der(self) -> bytes | None:
        """The verified client leaf certificate (mTLS), DER; None without TLS or client cert."""
        ...

    @property
    def peer_chain_der(self) -> tuple[bytes, ...]:
        """The verified chain, leaf first, when available; empty otherwise."""
        ...

    @property
    def alpn_protocol(self) -> str | None:
        """The ALPN protocol selected during the TLS handshake, or None."""
        ...

    @property
    def listener(self) -> str:
        """The name of the listener that accepted this stream."""
        ...

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending; never blocks. Ignored once the stream is closing."""
        ...

    def write_buffer_size(self) -> int:
        """Bytes queued and not yet handed to the kernel."""
        ...

    def pause_reading(self) -> None:
        """Stop calling ``data_received`` until ``resume_reading``."""
        ...

    def resume_reading(self) -> None:
        """Resume delivering data after ``pause_reading``."""
        ...

    def close(self) -> None:
        """Flush queued data, then close (TLS close_notify / WebSocket close frame)."""
        ...

    def abort(self) -> None:
        """Close at once, discarding queued data."""
        ...

    def is_closing(self) -> bool:
        """True once ``close``/``abort`` was called or the connection was lost."""
        ...


class StreamReceiver(Protocol):
    """What the MQTT connection handler implements; the transport calls it."""

    def stream_opened(self, stream: ByteStream) -> None:
        """Called once, after TLS/WebSocket handshakes succeeded."""
        ...

    def data_received(self, data: bytes) -> None:
        """Decrypted / unframed MQTT bytes, in order; packet boundaries are not preserved."""
        ...

    def stream_closed(self, exc: BaseException | None) -> None:
        """Called exactly once when the stream is gone (None on a clean close)."""
        ...

    def pause_writing(self) -> None:
        """The write buffer went above the high-water mark."""
        ...

    def resume_writing(self) -> None:
        """The write buffer drained below the low-water mark."""
        ...


ReceiverFactory = Callable[[], StreamReceiver]


class Listener(Protocol):
    """A bound, accepting server socket."""

    name: str

    @property
    def port(self) -> int:
        """The bound port (pass port 0 to bind a free one)."""
        ...

    async def start_serving(self) -> None:
        """Start accepting (a listener bound with ``start_serving=False``)."""
        ...

    async def close(self) -> None:
        """Stop accepting; existing streams are closed by their owner."""
        ...

    def connection_count(self) -> int:
        """Currently open connections (including those still handshaking)."""
        ...

    #: False while the node is not ready: new connections are closed at once.
    accepting: bool
