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
* **Publishing from synchronous code** (:meth:`Bus.publish_nowait`): the broker routes inside a
  socket callback. nats-py's publish only appends to its buffer before its first suspension
  point, so it is stepped once by hand and finished in a task only if it had to wait (buffer
  full); the wire order is the call order either way.
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

from lantern.settings.cluster import ClusterSettings

__all__ = ["Bus", "DirectHandler", "cluster_name"]

log = logging.getLogger("lantern.cluster")

DirectHandler = Callable[[bytes, bytes], None]
"""Called with (subject, payload) for each message of a direct subscription, in wire order."""


class _OrderedClient(Client):
    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_sid") or not hasattr(Client, "_process_msg"):
            raise RuntimeError(
                "this nats-py version has no Client._sid/_process_msg, which the cluster's "
                "ordered delivery relies on; install a nats-py version pyproject allows"
            )
        self.direct: dict[int, DirectHandler] = {}

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
        """A new connection (reconnecting forever, buffering while it does)."""
        s = self.settings
        assert s.nats_url
        client = _OrderedClient()
        options: dict[str, Any] = {
            "servers": [u.strip() for u in s.nats_url.split(",") if u.strip()],
            "name": f"lantern-{self.name}-{label}",
            "no_echo": no_echo,
            "max_reconnect_attempts": -1,
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

    def publish_nowait(self, client: Client, subject: str, payload: bytes) -> None:
        """Publish from synchronous code, in call order (see the module docstring)."""
        coro = client.publish(subject, payload)
        try:
            step = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self.publish_failures += 1
            now = time.monotonic()
            if now - self._last_failure_log >= 10.0:  # one line per 10 s, not one per message
                self._last_failure_log = now
                log.warning(
                    "messages to other nodes are being lost (%d so far): NATS: %s",
                    self.publish_failures,
                    exc,
                )
            return
        task = asyncio.get_running_loop().create_task(_finish(coro, step))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def connected(*clients: Client | None) -> bool:
        """Whether every one of ``clients`` is connected now (for readiness checks)."""
        return all(c is not None and c.is_connected for c in clients)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for background publishes (at stop)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)


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
