"""Memory-lean TLS listener: ``ssl.SSLObject`` + ``ssl.MemoryBIO`` over a plain asyncio transport.

asyncio's own TLS transport (Python 3.11) keeps a 256 KiB buffer per connection. Here each
connection holds only OpenSSL's state and two memory BIOs, and those are kept small:

- a memory BIO keeps the capacity of the largest amount it ever held for the life of the
  connection, so ciphertext is fed to the incoming BIO in slices (:data:`HANDSHAKE_FEED` during
  the handshake, :data:`READ_FEED` after) and plaintext is encrypted in slices of at most
  :data:`WRITE_CHUNK` bytes (one TLS record each), draining the outgoing BIO after each;
- decrypted data is read into the listener's shared buffer;
- OpenSSL's record buffers are released while idle (``SSL_MODE_RELEASE_BUFFERS``, set by CPython).

The receiver is created only after the handshake succeeded (so ``peer_cert_der`` is available in
``stream_opened``); a failed or slow handshake closes the socket, is counted by reason in
``TlsListener.handshake_failures`` and logged at INFO with the peer address and OpenSSL's reason
(through the server's :class:`~lantern.ratelog.RateLimitedLog`, so at most a few lines per
reason per minute), so that "certificate verify failed" can be diagnosed from the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import Counter
from typing import cast

from lantern.mqtt.transport.base import Listener, ReceiverFactory
from lantern.mqtt.transport.listener import Connection, StreamListener
from lantern.ratelog import RateLimitedLog

log = logging.getLogger("lantern.mqtt.transport")

#: Ciphertext fed to OpenSSL at once during the handshake / after it, and plaintext encrypted at
#: once (bytes). They bound what the memory BIOs retain per connection; measured on an idle mTLS
#: connection with an RSA client certificate, feeding 512 instead of 4096 saves 1.2 KiB.
HANDSHAKE_FEED = 512
READ_FEED = 1024
WRITE_CHUNK = 2048
#: Plaintext of one TLS record is at most 16 KiB.
_PLAIN_BUFFER_SIZE = 16 * 1024 + 256

#: What some OpenSSL reasons mean for whoever reads the server's log.
_EXPLAINED = {
    "certificate_verify_failed": "the client certificate is not signed by the platform CA",
    "peer_did_not_return_a_certificate": "the client sent no certificate",
    "tlsv1_alert_unknown_ca": "the client does not trust the server certificate (wrong CA file?)",
    "sslv3_alert_bad_certificate": "the client refused the server certificate",
    "sslv3_alert_certificate_unknown": "the client refused the server certificate",
    "wrong_version_number": "not TLS (a plain MQTT client on the TLS port?)",
    "http_request": "plain HTTP on the TLS port",
    "unsupported_protocol": "the client offered only TLS versions the server refuses",
    "no_shared_cipher": "no cipher suite in common",
    "timeout": "handshake not finished in time",
}


class TlsListener(StreamListener):
    """A :class:`StreamListener` with a TLS context and a shared plaintext buffer."""

    def __init__(
        self,
        name: str,
        factory: ReceiverFactory,
        ssl_context: ssl.SSLContext,
        *,
        max_connections: int,
        handshake_timeout: float,
        refusals: RateLimitedLog | None = None,
    ) -> None:
        super().__init__(
            name, factory, max_connections=max_connections, handshake_timeout=handshake_timeout
        )
        self.ssl_context = ssl_context
        self.plain_buffer = bytearray(_PLAIN_BUFFER_SIZE)
        self.plain_view = memoryview(self.plain_buffer)
        #: Failed handshakes by reason (OpenSSL's, lower case; ``timeout``), for metrics.
        self.handshake_failures: Counter[str] = Counter()
        self.refusals = refusals if refusals is not None else RateLimitedLog(log)

    def handshake_failed(self, peer: str, reason: str, detail: str | None = None) -> None:
        """Count and log (rate-limited) one refused handshake from ``peer``."""
        self.handshake_failures[reason] += 1
        why = reason.replace("_", " ")  # OpenSSL's words: "certificate verify failed"
        explained = [part for part in (detail, _EXPLAINED.get(reason)) if part]
        self.refusals.info(
            f"tls_{reason}",
            "refused TLS handshake on %s from %s: %s%s",
            self.name,
            peer,
            why,
            f" ({'; '.join(explained)})" if explained else "",
            peer=peer,
            listener=self.name,
            reason=reason,
        )


class TlsConnection(Connection):
    """One TLS connection driven through memory BIOs."""

    __slots__ = ("_handshake_timer", "_incoming", "_outgoing", "_ssl")

    _listener: TlsListener

    def __init__(self, listener: TlsListener) -> None:
        super().__init__(listener)
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._incoming: ssl.MemoryBIO | None = None
        self._outgoing: ssl.MemoryBIO | None = None
        self._ssl: ssl.SSLObject | None = None

    # -- ByteStream extras -----------------------------------------------------------------------

    @property
    def peer_cert_der(self) -> bytes | None:
        if self._ssl is None or self._receiver is None:
            return None
        try:
            return self._ssl.getpeercert(binary_form=True)
        except ValueError:  # handshake not done
            return None

    @property
    def peer_chain_der(self) -> tuple[bytes, ...]:
        if self._ssl is None or self._receiver is None:
            return ()
        # ``get_verified_chain`` is public from Python 3.13 on; 3.11/3.12 have it on the
        # underlying _ssl object.
        inner = getattr(self._ssl, "_sslobj", None)
        getter = getattr(inner, "get_verified_chain", None)
        if getter is not None:
            chain = getter() or []
            return tuple(cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in chain)  # type: ignore[attr-defined]
        leaf = self.peer_cert_der
        return (leaf,) if leaf else ()

    @property
    def alpn_protocol(self) -> str | None:
        return self._ssl.selected_alpn_protocol() if self._ssl is not None else None

    # -- lifecycle -------------------------------------------------------------------------------

    def _start(self) -> None:
        listener = self._listener
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = listener.ssl_context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        assert listener.handshake_timeout is not None
        self._handshake_timer = listener.loop.call_later(
            listener.handshake_timeout, self._handshake_timed_out
        )

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        self._listener.handshake_failed(self.remote_address, "timeout")
        self.abort()

    def _cancel_timers(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def buffer_updated(self, nbytes: int) -> None:
        incoming = self._incoming
        if incoming is None or self._closing:
            return
        view = self._listener.recv_view
        offset = 0
        while offset < nbytes:
            feed = READ_FEED if self._receiver is not None else HANDSHAKE_FEED
            end = min(offset + feed, nbytes)
            incoming.write(view[offset:end])
            offset = end
            if self._read_paused:
                continue  # keep the ciphertext; decrypt on resume_reading
            if self._receiver is None:
                if not self._do_handshake():
                    return
            else:
                self._read_plaintext()
            if self._closing:
                return

    def _do_handshake(self) -> bool:
        """Advance the handshake; False if the connection was closed because it failed."""
        sslobj = self._ssl
        assert sslobj is not None
        try:
            sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return True
        except (ssl.SSLError, OSError) as exc:
            reason = str(getattr(exc, "reason", None) or type(exc).__name__).lower()
            detail = getattr(exc, "verify_message", None)
            self._listener.handshake_failed(self.remote_address, reason, detail)
            self._flush_tls()  # the alert, so that the client learns why
            self._closing = True
            self._cancel_timers()
            assert self._transport is not None
            self._transport.close()
            return False
        self._cancel_timers()
        self._flush_tls()
        self._open_stream()
        if not self._closing:
            self._read_plaintext()  # application data may have come with the client's Finished
        return not self._closing

    def _read_plaintext(self) -> None:
        sslobj = self._ssl
        receiver = self._receiver
        assert sslobj is not None and receiver is not None
        listener = self._listener
        buffer, view = listener.plain_buffer, listener.plain_view
        while not self._closing and not self._read_paused:
            try:
                # With a buffer, read() returns the byte count (typeshed says bytes).
                n = cast(int, sslobj.read(_PLAIN_BUFFER_SIZE, buffer))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify from the peer
                self._flush_tls()
                self.close()
                return
            except (ssl.SSLError, OSError) as exc:
                log.debug(
                    "listener %s: TLS error from %s (%s)",
                    self.listener,
                    self.remote_address,
                    getattr(exc, "reason", None) or type(exc).__name__,
                )
                self.abort()
                return
            if not n:
                break
            receiver.data_received(view[:n].tobytes())
        # Reading may have produced TLS output (key update, alerts).
        if self._outgoing is not None and self._outgoing.pending:
            self._flush_tls()

    def _reading_resumed(self) -> None:
        if self._receiver is not None and self._incoming is not None:
            self._listener.loop.call_soon(self._resume_decrypting)

    def _resume_decrypting(self) -> None:
        if self._receiver is not None and not self._closing and not self._read_paused:
            self._read_plaintext()

    def _send(self, data: bytes) -> None:
        sslobj = self._ssl
        outgoing = self._outgoing
        transport = self._transport
        assert sslobj is not None and outgoing is not None and transport is not None
        if self._receiver is None:
            return  # no application data before the handshake
        view = memoryview(data)
        chunks: list[bytes] = []
        try:
            for offset in range(0, len(data), WRITE_CHUNK):
                sslobj.write(view[offset : offset + WRITE_CHUNK])
                chunks.append(outgoing.read())
        except (ssl.SSLError, OSError) as exc:
            log.debug(
                "listener %s: TLS write failed to %s (%s)",
                self.listener,
                self.remote_address,
                type(exc).__name__,
            )
            self.abort()
            return
        transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _flush_tls(self) -> None:
        outgoing = self._outgoing
        transport = self._transport
        if outgoing is not None and transport is not None and outgoing.pending:
            transport.write(outgoing.read())

    def _close_transport(self) -> None:
        sslobj = self._ssl
        if sslobj is not None and self._receiver is not None:
            # SSLWantReadError here means only that the peer's close_notify is not awaited.
            with contextlib.suppress(ssl.SSLError, OSError):
                sslobj.unwrap()  # queues our close_notify
            self._flush_tls()
        assert self._transport is not None
        self._transport.close()


async def start_tls_listener(
    name: str,
    host: str,
    port: int,
    factory: ReceiverFactory,
    *,
    ssl_context: ssl.SSLContext,
    handshake_timeout: float = 10.0,
    max_connections: int,
    start_serving: bool = True,
    refusals: RateLimitedLog | None = None,
    reuse_port: bool = False,
) -> Listener:
    """Listen for TLS on ``host:port`` (0 = a free port); see the module docstring.

    ``ssl_context`` comes from :func:`make_server_ssl_context`. A handshake not finished within
    ``handshake_timeout`` seconds, or failing (e.g. no client certificate, one from another CA),
    closes the socket without ever calling ``factory`` (logged through ``refusals``, a
    :class:`RateLimitedLog`; by default one of its own). Over ``max_connections`` open
    connections (handshaking ones included), a new connection is accepted and closed at once.
    """
    listener = TlsListener(
        name,
        factory,
        ssl_context,
        max_connections=max_connections,
        handshake_timeout=handshake_timeout,
        refusals=refusals,
    )
    await listener.bind(
        host,
        port,
        lambda: TlsConnection(listener),
        start_serving=start_serving,
        reuse_port=reuse_port,
    )
    return listener
