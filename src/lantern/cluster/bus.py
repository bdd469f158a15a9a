"""The node's connections to NATS, built from ``[cluster]`` settings.

:class:`Bus` owns NATS connections for the MQTT routing of one node and their subject
namespace (:attr:`Bus.prefix`, ``lantern.<cluster name>``; the cluster name is the database
name, so clusters on separate databases never see each other on a shared NATS).

Two things nats-py does not offer are added here:

* **Ordered, task-free delivery.** nats-py hands each subscription's messages to a task of its
  own, so messages arriving on two subscriptions of one connection can be handled out of wire
  order. MQTT needs each publisher's order kept for each subscriber, who may be reached through
  several subscriptions (``a`` and ``a.>`` for ``a/#``). :class:`_OrderedClient` calls the
  handler of a "direct" subscription synchronously from the connection's reader, in wire order.
* **Publishing from synchronous code, batched** (:meth:`Bus.publish_nowait`): the broker routes
  inside a socket callback. Each message is appended as a ``PUB`` command to the connection's
  outbox; the first one schedules one hand-over of the whole outbox to nats-py's write buffer
  at the end of the loop turn, or, under load, :data:`COALESCE_SECONDS` after the previous
  hand-over. A batch costs one buffer append and one write instead of a coroutine per message
  and a write per loop turn. The wire order is the call order.
* **A cheaper reader.** nats-py's parser matches a regular expression and deletes the consumed
  bytes from its buffer (a copy of the rest) for every message, then awaits a coroutine per
  message. :class:`_FastParser` handles runs of ``MSG`` lines of direct subscriptions in one
  pass over the buffer (one deletion per read); anything else goes to nats-py's parser as
  before.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser

from lantern.settings.cluster import ClusterSettings

__all__ = ["Bus", "DirectHandler", "cluster_name"]

log = logging.getLogger("lantern.cluster")

COALESCE_SECONDS = 0.001
"""A hand-over of batched publishes (one write to NATS) follows the previous one after at least
this long: under load, a write per millisecond instead of one per event-loop turn (each a
system call here and a wake-up of NATS and of the receiving node); when idle, a message goes at
the end of the loop turn that published it, without delay."""

DirectHandler = Callable[[bytes, bytes], None]
"""Called with (subject, payload) for each message of a direct subscription, in wire order."""


_NATS_INTERNALS = ("_sid", "_ps", "_max_payload", "_pending_data_size", "_max_pending_size")


class _FastParser(Parser):
    """nats-py's parser with a fast path for ``MSG`` of direct subscriptions (module docstring).

    Only complete ``MSG <subject> <sid> <size>`` frames (no reply subject) of a direct
    subscription are taken here, in wire order; the first frame of any other kind, with the rest
    of the buffer behind it, goes to nats-py's own parser, so order is kept.
    """

    nc: _OrderedClient

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        if self.state != AWAITING_CONTROL_LINE:
            await super().parse()
            return
        direct = self.nc.direct
        end = len(buf)
        pos = 0
        count = 0
        size_in = 0
        rest_to_nats = False
        try:
            while pos < end:
                if not buf.startswith(b"MSG ", pos):
                    rest_to_nats = True
                    break
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    rest_to_nats = True  # an incomplete line: nats-py waits (or rejects it)
                    break
                parts = buf[pos + 4 : eol].split()
                if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                    rest_to_nats = True
                    break
                handler = direct.get(int(parts[1]))
                if handler is None:
                    rest_to_nats = True
                    break
                start = eol + 2
                stop = start + int(parts[2])
                if stop + 2 > end:
                    break  # the payload is not all here yet: wait for more
                payload = bytes(buf[start:stop])
                pos = stop + 2
                count += 1
                size_in += stop - start
                try:
                    handler(bytes(parts[0]), payload)
                except Exception:
                    log.exception("cluster message handler failed")
        finally:
            if pos:
                del buf[:pos]
            if count:
                stats = self.nc.stats
                stats["in_msgs"] += count
                stats["in_bytes"] += size_in
        if rest_to_nats:
            await super().parse()


class _OrderedClient(Client):
    def __init__(self) -> None:
        super().__init__()
        missing = [a for a in _NATS_INTERNALS if not hasattr(self, a)]
        missing += [
            m for m in ("_process_msg", "_send_command", "_flush_pending") if not hasattr(Client, m)
        ]
        if missing:
            raise RuntimeError(
                f"this nats-py version has no Client.{', '.join(missing)}, which the cluster's "
                "ordered delivery relies on; install a nats-py version pyproject allows"
            )
        self.direct: dict[int, DirectHandler] = {}
        self._ps = _FastParser(self)
        self.outbox: list[bytes] = []  # PUB commands not yet handed over (Bus.publish_nowait)
        self.sent_at = 0.0  # time.monotonic() of the last hand-over

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        handler = self.direct.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        try:
            handler(subject, data)
        except Exception:
            log.exception("cluster message handler failed")


def cluster_name(database_url: str) -> str:
    """The cluster's name: its database's name, as a NATS token ([A-Za-z0-9_-])."""
    from sqlalchemy.engine import make_url

    try:
        name = make_url(database_url).database or "lantern"
    except Exception:
        name = "lantern"
    name = name.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "lantern"


class Bus:
    """NATS connections of one node (see the module docstring)."""

    def __init__(self, settings: ClusterSettings, name: str) -> None:
        assert settings.nats_url
        self.settings = settings
        self.name = name
        self.prefix = f"lantern.{name}"
        self.errors = 0
        self.publish_failures = 0  # messages not handed to NATS (not connected, buffer full)
        self._last_failure_log = -1e9
        self.closing = False  # set before closing our own connections: no warnings then
        self._tasks: set[asyncio.Task[Any]] = set()

    async def connect(self, label: str, *, no_echo: bool = False) -> _OrderedClient:
        """A new connection: up to 10 attempts 0.5 s apart, then, once connected,
        reconnecting forever and buffering meanwhile."""
        s = self.settings
        assert s.nats_url
        client = _OrderedClient()
        options: dict[str, Any] = {
            "servers": [u.strip() for u in s.nats_url.split(",") if u.strip()],
            "name": f"lantern-{self.name}-{label}",
            "no_echo": no_echo,
            # At start, a few attempts (then serve stops with what to fix); once connected,
            # reconnect forever (set below).
            "max_reconnect_attempts": 10,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 5,
            "error_cb": self._error,
            "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
        }
        if s.nats_user:
            options["user"] = s.nats_user
        if s.nats_password is not None:
            options["password"] = s.nats_password.get_secret_value()
        if s.nats_token is not None:
            options["token"] = s.nats_token.get_secret_value()
        if s.nats_creds_file:
            options["user_credentials"] = s.nats_creds_file
        if s.nats_tls_ca:
            options["tls"] = ssl.create_default_context(cafile=s.nats_tls_ca)
        await client.connect(**options)
        client.options["max_reconnect_attempts"] = -1
        return client

    async def _error(self, exc: Exception) -> None:
        self.errors += 1
        log.warning("NATS: %s", exc)

    async def _disconnected(self) -> None:
        if self.closing:
            return
        log.warning("NATS connection lost; reconnecting (messages to other nodes are buffered)")

    async def _reconnected(self) -> None:
        log.info("NATS connection re-established")

    @staticmethod
    async def subscribe_direct(
        client: _OrderedClient, subject: str, handler: DirectHandler, queue: str = ""
    ) -> Subscription:
        """Subscribe with ``handler`` called in wire order from the reader (see above)."""
        # The id nats-py gives the next subscription: registered before SUB goes out, so no
        # message of it can take the per-subscription path.
        sid = client._sid + 1
        client.direct[sid] = handler

        async def fallback(msg: Any) -> None:  # only if nats-py numbered it differently
            handler(msg.subject.encode(), msg.data)

        sub = await client.subscribe(subject, queue=queue, cb=fallback)
        if sub._id != sid:
            client.direct.pop(sid, None)
            client.direct[sub._id] = handler
        return sub

    @staticmethod
    async def unsubscribe_direct(client: _OrderedClient, sub: Subscription) -> None:
        client.direct.pop(sub._id, None)
        await sub.unsubscribe()

    def publish_nowait(self, client: _OrderedClient, subject: str, payload: bytes) -> None:
        """Publish from synchronous code, in call order, batched (see the module docstring).
        ``subject`` must be a valid subject (no whitespace)."""
        size = len(payload)
        if size > client._max_payload:
            self._lost(1, f"a message of {size} bytes is over the NATS max_payload")
            return
        outbox = client.outbox
        if not outbox:
            loop = asyncio.get_running_loop()
            wait = client.sent_at + COALESCE_SECONDS - time.monotonic()
            if wait <= 0:  # idle: at the end of this loop turn
                loop.call_soon(self.send_outbox, client)
            else:  # busy: with what the next turns add
                loop.call_later(wait, self.send_outbox, client)
        outbox += (b"PUB %s %d\r\n" % (subject.encode(), size), payload, b"\r\n")

    def send_outbox(self, client: _OrderedClient) -> None:
        """Hand the commands :meth:`publish_nowait` collected to nats-py's write buffer."""
        outbox = client.outbox
        if not outbox:
            return
        client.outbox = []
        client.sent_at = time.monotonic()
        count = len(outbox) // 3
        data = b"".join(outbox)
        if client.is_closed:
            self._lost(count, "connection closed")
            return
        if not client.is_connected and (
            client._max_pending_size <= 0
            or len(data) + client._pending_data_size > client._max_pending_size
        ):
            self._lost(count, "disconnected and its buffer is full")
            return
        client.stats["out_msgs"] += count
        client.stats["out_bytes"] += len(data)
        coro = _push(client, data)
        try:
            step = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self._lost(count, str(exc))
            return
        task = asyncio.get_running_loop().create_task(_finish(coro, step))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lost(self, count: int, why: str) -> None:
        self.publish_failures += count
        now = time.monotonic()
        if now - self._last_failure_log >= 10.0:  # one line per 10 s, not one per message
            self._last_failure_log = now
            log.warning(
                "messages to other nodes are being lost (%d so far): NATS: %s",
                self.publish_failures,
                why,
            )

    @staticmethod
    def connected(*clients: Client | None) -> bool:
        """Whether every one of ``clients`` is connected now (for readiness checks)."""
        return all(c is not None and c.is_connected for c in clients)

    async def settle(self, *clients: _OrderedClient | None) -> None:
        """Send what ``clients`` batched and wait for background publishes (at stop)."""
        for client in clients:
            if client is not None:
                self.send_outbox(client)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)


async def _push(client: _OrderedClient, data: bytes) -> None:
    """What nats-py's publish does after its checks, for many PUB commands at once."""
    await client._send_command(data)
    if client._flush_queue is not None and client._flush_queue.empty():
        await client._flush_pending()


async def _finish(coro: Coroutine[Any, Any, Any], step: Any) -> None:
    try:
        await _rest(coro, step)
    except Exception as exc:
        log.warning("NATS publish failed: %s", exc)


@types.coroutine
def _rest(coro: Coroutine[Any, Any, Any], step: Any) -> Generator[Any, Any, Any]:
    """Drive a coroutine stepped once by hand to its end under the current task."""
    while True:
        try:
            sent = yield step
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                step = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                step = coro.send(sent)
            except StopIteration as stop:
                return stop.value
