"""Routing MQTT messages between nodes by NATS subject interest (docs/cluster.md).

:class:`ClusterRouter` is the broker's :class:`~lantern.mqtt.broker.link.ClusterLink`:

* **Out.** Every message that starts on this node is delivered locally by the broker as on one
  node and published ONCE to NATS on its topic's subject (:mod:`lantern.cluster.subjects`), on a
  connection with ``no_echo`` (this node never gets its own messages back).
* **Interest.** For each filter its local clients hold (reference counted per
  ``(group, filter)``), the node subscribes on NATS to the filter's subjects and unsubscribes
  when the last local subscriber goes: NATS carries a message only to nodes that want it.
* **In.** A message from NATS is matched again against this node's own subscription trie, so
  ``$`` topics, wildcards, No Local and overlapping subscriptions behave as on one node. NATS
  delivers one copy per matching NATS subscription: copies are dropped by ``(origin, seq)``;
  all messages of one origin arrive on one connection, in order, handled in wire order
  (:mod:`lantern.cluster.bus`), so "seq not above the last one seen" identifies a copy.
* **Shared subscriptions.** ``$share/<g>/<f>`` is a NATS queue subscription (one per node, queue
  name from ``(g, f)``) on a second connection (with echo, so the publishing node's own members
  take part): NATS picks one node per message, that node picks one of its local members.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lantern.cluster.bus import Bus
from lantern.cluster.envelope import EnvelopeError, decode, encode
from lantern.cluster.subjects import filter_subjects, topic_subject
from lantern.mqtt.broker import Message

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

    from lantern.cluster.bus import _OrderedClient
    from lantern.cluster.retained import RetainedSync
    from lantern.cluster.sessions import SessionDirectory
    from lantern.mqtt.broker import Session
    from lantern.mqtt.server import MQTTServer

__all__ = ["ClusterRouter", "RouterStats"]

log = logging.getLogger("lantern.cluster")

Key = tuple[str | None, str]  # (shared group or None, topic filter)
_SUBJECT_CACHE = 4096  # topics whose subject is kept (cleared when full)


@dataclass(slots=True)
class RouterStats:
    messages_out: int = 0  # published to NATS
    messages_in: int = 0  # received from NATS and routed here
    duplicates: int = 0  # copies dropped (overlapping NATS subscriptions)
    shared_in: int = 0  # of messages_in: given to a shared group here
    bad: int = 0  # not an envelope


class ClusterRouter:
    """See the module docstring. ``origin`` names this node's process in envelopes."""

    def __init__(self, bus: Bus, server: MQTTServer, origin: str) -> None:
        self.bus = bus
        self.server = server
        self.origin = origin
        self.prefix = bus.prefix
        self.stats = RouterStats()
        self.retained: RetainedSync | None = None
        self.sessions: SessionDirectory | None = None
        self._routes: _OrderedClient | None = None  # no_echo: publishing and plain filters
        self._shared: _OrderedClient | None = None  # queue subscriptions
        self._seq = 0
        self._subjects: dict[str, str] = {}  # topic -> subject, of recent topics
        self._last_seen: dict[str, int] = {}
        self._counts: dict[Key, int] = {}
        self._subs: dict[Key, list[Subscription]] = {}
        self._dirty: set[Key] = set()
        self._syncing: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()

    async def start(self) -> None:
        self._routes = await self.bus.connect("routes", no_echo=True)
        self._shared = await self.bus.connect("shared")
        await self.bus.subscribe_direct(self._routes, f"{self.prefix}.long", self._on_message)
        await self._routes.flush()

    async def stop(self) -> None:
        self.bus.closing = True
        if self._syncing is not None:
            self._syncing.cancel()
        if self._routes is not None:
            self.bus.send_outbox(self._routes)  # what was routed since Bus.settle
        for client in (self._routes, self._shared):
            if client is not None and not client.is_closed:
                try:
                    await client.flush(timeout=2)  # what the last connections published
                except Exception as exc:
                    log.debug("NATS flush at stop: %s", exc)
                await client.close()

    @property
    def routes_client(self) -> _OrderedClient:
        assert self._routes is not None
        return self._routes

    @property
    def shared_client(self) -> _OrderedClient:
        assert self._shared is not None
        return self._shared

    # -- ClusterLink ---------------------------------------------------------------------

    def forward(self, message: Message) -> None:
        routes = self._routes
        if routes is None:
            return
        self._seq += 1
        data = encode(message, self.origin, self._seq, self.server.loop.time())
        topic = message.topic
        subject = self._subjects.get(topic)
        if subject is None:
            if len(self._subjects) >= _SUBJECT_CACHE:
                self._subjects.clear()
            subject = self._subjects[topic] = topic_subject(self.prefix, topic)
        self.bus.publish_nowait(routes, subject, data)
        self.stats.messages_out += 1
        if message.retain and self.retained is not None:
            self.retained.changed(message.topic, data if message.payload else None)

    def interest(self, topic_filter: str, group: str | None, added: bool) -> None:
        key = (group, topic_filter)
        count = self._counts.get(key, 0) + (1 if added else -1)
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)
        if (count == 1 and added) or count <= 0:
            self._dirty.add(key)
            self._settled.clear()
            if self._syncing is None or self._syncing.done():
                self._syncing = self.server.loop.create_task(self._sync())

    def session_changed(self, session: Session, ended: bool) -> None:
        if self.sessions is not None:
            self.sessions.changed(session.client_id)

    def routes_settled(self, with_retained: bool) -> asyncio.Future[Any] | None:
        """None if NATS already has every route (and, ``with_retained``, this node every
        retained message change the cluster made); else a future done when it has."""
        waits: list[Any] = []
        if not self._settled.is_set():
            waits.append(self._settled.wait())
        if with_retained and self.retained is not None:
            waits.append(self.retained.caught_up())
        if not waits:
            return None
        gathered: asyncio.Future[Any] = asyncio.gather(*waits)
        return gathered

    async def _sync(self) -> None:
        """Make the NATS subscriptions match the local filters (one change at a time)."""
        try:
            while self._dirty:
                while self._dirty:
                    key = self._dirty.pop()
                    try:
                        await self._reconcile(key)
                    except Exception:
                        log.exception("cluster route for %r not updated", key)
                await self.routes_client.flush()
                await self.shared_client.flush()
        finally:
            if not self._dirty:
                self._settled.set()

    async def _reconcile(self, key: Key) -> None:
        wanted = key in self._counts
        subs = self._subs.get(key)
        if wanted and subs is None:
            group, topic_filter = key
            subjects = filter_subjects(self.prefix, topic_filter)
            made: list[Subscription] = []
            if group is None:
                for subject in subjects:
                    made.append(
                        await self.bus.subscribe_direct(
                            self.routes_client, subject, self._on_message
                        )
                    )
            else:
                queue = hashlib.sha256(f"{group}\0{topic_filter}".encode()).hexdigest()[:24]
                handler = self._shared_handler(group, topic_filter)
                for subject in subjects:
                    made.append(
                        await self.bus.subscribe_direct(
                            self.shared_client, subject, handler, queue=queue
                        )
                    )
            self._subs[key] = made
        elif not wanted and subs is not None:
            del self._subs[key]
            client = self.routes_client if key[0] is None else self.shared_client
            for sub in subs:
                await self.bus.unsubscribe_direct(client, sub)

    # -- inbound -------------------------------------------------------------------------

    def _on_message(self, subject: bytes, data: bytes) -> None:
        server = self.server
        try:
            envelope = decode(data, server.loop.time())
        except EnvelopeError as exc:
            self.stats.bad += 1
            log.warning(
                "dropped a cluster message on %s: %s", subject.decode(errors="replace"), exc
            )
            return
        origin = envelope.origin
        last = self._last_seen.get(origin)
        if last is not None and envelope.seq <= last:
            self.stats.duplicates += 1
            return
        self._last_seen[origin] = envelope.seq
        self.stats.messages_in += 1
        server.deliver_remote(envelope.message)

    def _shared_handler(self, group: str, topic_filter: str) -> Any:
        def on_shared(subject: bytes, data: bytes) -> None:
            server = self.server
            try:
                envelope = decode(data, server.loop.time())
            except EnvelopeError as exc:
                self.stats.bad += 1
                log.warning("dropped a shared cluster message: %s", exc)
                return
            self.stats.messages_in += 1
            self.stats.shared_in += 1
            server.deliver_shared(envelope.message, group, topic_filter)

        return on_shared
