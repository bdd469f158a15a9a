"""The network thread of a device connection: paho-mqtt driven through its external-loop API.

paho's own ``loop_start()`` waits with ``select.select()``, which cannot watch a descriptor
numbered 1024 or above (FD_SETSIZE). In a process with that many descriptors open (a busy
gateway, a provisioning line running many flows, or paho's own socket pairs not yet collected)
``select`` raises, paho takes it for a lost connection and reconnects in a loop whose CONNECT is
queued but never written: the server sees a TLS connection that never sends CONNECT. Here the
socket is watched with :mod:`selectors` (epoll/kqueue: no such limit), and every descriptor the
thread creates is closed when it stops, not when the garbage collector gets to it.

paho calls ``on_socket_register_write`` from whichever thread queued a packet; that only wakes
this thread, which asks paho what it wants to write on every turn. paho never reconnects here:
a lost connection ends the thread and the caller's waits fail at once (see
:class:`lantern.device.client.DeviceClient`).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["NetworkThread"]

#: The longest wait between two turns (paho's keep-alive bookkeeping runs every turn).
_TURN_SECONDS = 1.0


class NetworkThread:
    """Reads, writes and keeps alive one connected paho client until it disconnects."""

    def __init__(self, client: mqtt.Client, name: str) -> None:
        self._client = client
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        client.on_socket_register_write = self._register_write

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Make the thread take a turn now (something was queued for writing)."""
        with contextlib.suppress(OSError):  # full (a wake-up is pending) or already closed
            self._wake_w.send(b"\0")

    def stop(self, timeout: float) -> None:
        """Let queued packets (a DISCONNECT) go out for up to ``timeout`` seconds, then stop and
        close the socket and the thread's own descriptors."""
        if self._thread.is_alive():
            self.wake()
            self._thread.join(timeout)
        self._stopping = True
        self.wake()
        if self._thread.is_alive():
            self._thread.join(_TURN_SECONDS * 2)
        sock = self._client.socket()
        if sock is not None:  # the peer never let the DISCONNECT through: drop the connection
            sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def _register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self.wake()

    def _run(self) -> None:
        client = self._client
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            sock = client.socket()
            if sock is None:
                return
            selector.register(sock, selectors.EVENT_READ)
            while not self._stopping and client.socket() is sock:
                events = selectors.EVENT_READ
                if client.want_write():
                    events |= selectors.EVENT_WRITE
                selector.modify(sock, events)
                # TLS may hold decrypted bytes that the socket no longer shows as readable.
                buffered = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                readable, writable = buffered, False
                for key, mask in selector.select(0 if buffered else _TURN_SECONDS):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        readable = readable or bool(mask & selectors.EVENT_READ)
                        writable = writable or bool(mask & selectors.EVENT_WRITE)
                rc = mqtt.MQTT_ERR_SUCCESS
                if readable:
                    rc = client.loop_read()
                if rc == mqtt.MQTT_ERR_SUCCESS and client.socket() is sock and client.want_write():
                    rc = client.loop_write()
                if rc == mqtt.MQTT_ERR_SUCCESS and client.socket() is sock:
                    rc = client.loop_misc()
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # paho closed the socket and called on_disconnect
