"""The broker core: sessions, subscriptions, retained messages, wills; no sockets, no clock.

Every operation takes ``now`` (a monotonic time in seconds) and returns decisions: the
:class:`Delivery` objects to write, each naming its session. A Delivery with ``released`` set
means "send PUBREL" (QoS 2 resumed after a reconnect); otherwise "send this PUBLISH". The server
writes them after the call returns (compute first, I/O after). Time-driven work (delayed wills,
session expiry) is done by :meth:`Broker.tick`, which the server calls at
:meth:`Broker.next_deadline`.

Session ownership: a session belongs to the principal (``owner``) whose connection created it;
the server refuses a CONNECT of another principal for that client id before :meth:`Broker.connect`
(:meth:`Broker.owned_by_another`). Replies sent with :meth:`Broker.deliver_direct` belong to the
one connection that asked: never queued for an offline session, and dropped when that connection
ends (taken over or gone), so no later connection receives them. Messages resent on resume pass
``may_receive`` for the resuming connection, as queued ones do.

Will rules (MQTT 5.0 §3.1.2.5, §3.1.3.2.2): a will is published when the connection ends
without a normal DISCONNECT, after its Will Delay Interval or when the session ends, whichever
comes first; a new connection to the session before then cancels it; a takeover that resumes the
session therefore cancels a delayed will, and a takeover with Clean Start publishes it at once.

Byte limits (QoS 1/2; QoS 0 is never held): a delivery weighs ``Message.size`` (payload + topic,
counted per delivery although recipients share the payload: conservative). A session holds at
most ``max_session_bytes`` in its queue and in flight together, and all queues together at most
``max_queued_bytes_total``; a message over either limit is dropped for that session (the NEWEST,
as when the queue is full) and counted in :class:`BrokerStats`. Only integer adds on the
publish path.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lantern.mqtt.broker.link import ClusterLink
from lantern.mqtt.broker.message import Message
from lantern.mqtt.broker.retained import RetainedStore
from lantern.mqtt.broker.session import NEVER_EXPIRES, Delivery, Session
from lantern.mqtt.broker.trie import Subscription, SubscriptionTrie

__all__ = ["Broker", "BrokerStats", "ConnectOutcome", "ReceiveCheck"]

ReceiveCheck = Callable[[Session, str], bool]
"""May this (connected) session receive a message on this topic? (the authorizer's may_receive)"""


@dataclass(slots=True)
class BrokerStats:
    """Counters of messages not delivered, by cause; and the bytes queued now."""

    dropped_queue_full: int = 0
    dropped_qos0_offline: int = 0
    dropped_expired: int = 0
    dropped_not_authorized: int = 0
    dropped_session_bytes: int = 0  # over the session's max_session_bytes
    dropped_total_bytes: int = 0  # over max_queued_bytes_total
    queued_bytes: int = 0  # in every session's queue (not in flight), now


@dataclass(slots=True)
class ConnectOutcome:
    """Result of :meth:`Broker.connect`.

    ``taken_over`` is the previous connection of this client id (to close with 0x8E);
    ``deliveries`` are, in order, wills released by the takeover, then the session's resent
    messages (DUP) and PUBRELs, then queued messages that fit the window.
    """

    session: Session
    session_present: bool
    taken_over: object | None = None
    deliveries: list[Delivery] = field(default_factory=list)


class Broker:
    """Routing and session state for one server."""

    def __init__(
        self,
        *,
        max_inflight: int = 100,
        max_queued: int = 1000,
        max_retained: int = 100_000,
        max_retained_bytes: int = 256 << 20,
        max_session_bytes: int = 16 << 20,
        max_queued_bytes_total: int = 256 << 20,
        may_receive: ReceiveCheck | None = None,
    ) -> None:
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.max_session_bytes = max_session_bytes
        self.max_queued_bytes_total = max_queued_bytes_total
        self.may_receive = may_receive
        self.sessions: dict[str, Session] = {}
        self.trie = SubscriptionTrie()
        self.retained = RetainedStore(max_retained, max_retained_bytes)
        self.stats = BrokerStats()
        self._timers: list[tuple[float, int, int, Session]] = []
        self._timer_seq = 0
        # Other nodes of a cluster (lantern.mqtt.broker.link); None on a single node.
        self.link: ClusterLink | None = None

    # -- connections ---------------------------------------------------------------------

    def connect(
        self,
        client_id: str,
        connection: object,
        *,
        protocol_level: int,
        clean_start: bool,
        expiry_interval: int,
        receive_maximum: int = 65535,
        will: Message | None = None,
        will_delay: int = 0,
        owner: object = None,
        now: float,
    ) -> ConnectOutcome:
        """Attach ``connection`` to the client's session (new, resumed or taken over).

        The caller checked :meth:`owned_by_another` first: only the session's ``owner`` resumes
        or takes it over. Resumed messages pass ``may_receive`` for the new connection.
        """
        out: list[Delivery] = []
        taken_over: object | None = None
        session = self.sessions.get(client_id)
        if session is not None:
            if session.connection is not None:
                taken_over = session.connection
                session.connection = None
                _drop_direct(session)
                old_will = session.will
                if old_will is not None and (clean_start or session.will_delay == 0):
                    self._publish(old_will.restamped(now), now, out)
            elif session.will_due is not None and session.will is not None and clean_start:
                self._publish(session.will.restamped(now), now, out)  # the session ends
            session.will = None
            session.will_due = None
            if clean_start:
                self._discard(session)
                session = None
        present = session is not None
        if session is None:
            session = Session(client_id, protocol_level, owner)
            self.sessions[client_id] = session
        session.connection = connection
        session.protocol_level = protocol_level
        session.receive_maximum = max(1, min(receive_maximum, self.max_inflight))
        session.expiry_interval = expiry_interval
        session.expires_at = None
        session.will = will
        session.will_delay = will_delay
        session.timer_generation += 1
        if session.inflight:
            self._resend_inflight(session, out)
        self._drain(session, now, out)
        if self.link is not None:
            self.link.session_changed(session, False)
        return ConnectOutcome(session, present, taken_over, out)

    def owned_by_another(self, client_id: str, owner: object) -> bool:
        """True if a session (live or persisted) of ``client_id`` belongs to another owner."""
        session = self.sessions.get(client_id)
        return session is not None and session.owner != owner

    def _resend_inflight(self, session: Session, out: list[Delivery]) -> None:
        """Redeliver the in-flight messages (DUP) that the resuming connection may receive."""
        may_receive = self.may_receive
        inflight = session.inflight
        for pid, delivery in list(inflight.items()):
            if may_receive is not None and not may_receive(session, delivery.message.topic):
                del inflight[pid]
                self.stats.dropped_not_authorized += 1
                continue
            delivery.dup = not delivery.released
            out.append(delivery)

    def disconnect(
        self,
        session: Session,
        connection: object,
        *,
        publish_will: bool,
        expiry_interval: int | None = None,
        now: float,
    ) -> list[Delivery]:
        """The connection ended. No-op if ``connection`` no longer owns the session (takeover).

        ``publish_will`` is False after a normal DISCONNECT (0x00); ``expiry_interval`` is the
        Session Expiry Interval from the DISCONNECT, if it set one.
        """
        out: list[Delivery] = []
        if session.connection is not connection:
            return out
        session.connection = None
        session.timer_generation += 1
        if expiry_interval is not None:
            session.expiry_interval = expiry_interval
        if not publish_will:
            session.will = None
        will = session.will
        if session.expiry_interval == 0:
            if will is not None:
                self._publish(will.restamped(now), now, out)
            self._discard(session)
            return out
        _drop_direct(session)  # replies to this connection end with it
        if self.link is not None:
            self.link.session_changed(session, False)
        if session.expiry_interval != NEVER_EXPIRES:
            session.expires_at = now + session.expiry_interval
            self._schedule(session.expires_at, session)
        if will is not None:
            if session.will_delay <= 0:
                session.will = None
                self._publish(will.restamped(now), now, out)
            else:
                session.will_due = now + session.will_delay
                self._schedule(session.will_due, session)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work (may be early; never late)."""
        return self._timers[0][0] if self._timers else None

    def tick(self, now: float) -> list[Delivery]:
        """Publish delayed wills that are due and end expired sessions."""
        out: list[Delivery] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, generation, session = heapq.heappop(timers)
            if (
                generation != session.timer_generation
                or session.connection is not None
                or self.sessions.get(session.client_id) is not session
            ):
                continue
            will = session.will
            ends = session.expires_at is not None and session.expires_at <= now
            due = session.will_due is not None and session.will_due <= now
            if will is not None and (ends or due):
                session.will = None
                session.will_due = None
                self._publish(will.restamped(now), now, out)
                if not ends and self.link is not None:
                    self.link.session_changed(session, False)  # its record keeps no will
            if ends:
                self._discard(session)
        return out

    # -- publish -------------------------------------------------------------------------

    def publish(self, message: Message, now: float) -> list[Delivery]:
        """Route one message to every matching subscription (and store it if retained)."""
        out: list[Delivery] = []
        self._publish(message, now, out)
        return out

    def deliver_direct(
        self, session: Session, message: Message, qos: int, now: float
    ) -> list[Delivery]:
        """Send to one session regardless of its subscriptions (a reply to a request)."""
        out: list[Delivery] = []
        self._deliver(session, message, qos, False, (), now, out, direct=True)
        return out

    def complete(self, session: Session, packet_id: int, now: float) -> list[Delivery] | None:
        """PUBACK / PUBCOMP (or a failed PUBREC) ended a flow; None if the id was not in flight.

        Returns the queued messages that now fit the window.
        """
        delivery = session.inflight.pop(packet_id, None)
        if delivery is None:
            return None
        session.held_bytes -= delivery.message.size
        out: list[Delivery] = []
        if session.queue:
            self._drain(session, now, out)
        return out

    def released(self, session: Session, packet_id: int) -> bool:
        """PUBREC for an outbound QoS 2 message: send PUBREL next. False if unknown."""
        delivery = session.inflight.get(packet_id)
        if delivery is None or delivery.qos != 2:
            return False
        delivery.released = True
        return True

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(
        self,
        session: Session,
        key: str,
        subscription: Subscription,
        now: float,
        *,
        with_retained: bool = True,
    ) -> tuple[bool, list[Delivery]]:
        """Add or replace a subscription (``key`` = the filter as sent, incl. ``$share/..``).

        Returns whether it is new, and the retained messages to send per Retain Handling
        (none with ``with_retained=False``: the caller asks :meth:`retained_for` later).
        """
        existed = key in session.subscriptions
        session.subscriptions[key] = subscription
        self.trie.add(subscription)
        if self.link is not None:
            if not existed:
                self.link.interest(subscription.topic_filter, subscription.group, True)
            self.link.session_changed(session, False)
        if not with_retained:
            return not existed, []
        return not existed, self.retained_for(session, subscription, not existed, now)

    def wants_retained(self, subscription: Subscription, new: bool) -> bool:
        """Whether Retain Handling sends retained messages for this subscription (shared
        subscriptions get none, [MQTT-3.8.4-4... 4.8.2])."""
        handling = subscription.retain_handling
        return subscription.group is None and (handling == 0 or (handling == 1 and new))

    def retained_for(
        self, session: Session, subscription: Subscription, new: bool, now: float
    ) -> list[Delivery]:
        """The retained messages a (``new``) subscription gets, per Retain Handling."""
        out: list[Delivery] = []
        if self.wants_retained(subscription, new):
            for message in self.retained.matching(subscription.topic_filter, now):
                qos = min(subscription.qos, message.qos)
                self._deliver(session, message, qos, True, subscription.sub_ids, now, out)
        return out

    def unsubscribe(self, session: Session, key: str) -> bool:
        """Remove a subscription; False if the session had none with that filter."""
        sub = session.subscriptions.pop(key, None)
        if sub is None:
            return False
        self.trie.remove(session.client_id, sub.topic_filter, sub.group)
        if self.link is not None:
            self.link.interest(sub.topic_filter, sub.group, False)
            self.link.session_changed(session, False)
        return True

    # -- internals -----------------------------------------------------------------------

    def publish_remote(self, message: Message, now: float) -> list[Delivery]:
        """Route a message that started on another node of the cluster to this node's plain
        subscriptions (never forwarded again; its node stored it if retained)."""
        out: list[Delivery] = []
        self._route_plain(self.trie.match(message.topic)[0], message, now, out)
        return out

    def publish_shared(
        self, message: Message, group: str, topic_filter: str, now: float
    ) -> list[Delivery]:
        """Deliver to one member (here) of ``$share/<group>/<topic_filter>``: the cluster
        chose this node for it."""
        out: list[Delivery] = []
        found = self.trie.shared_group(topic_filter, group)
        if found is not None and found.members:
            self._route(found.pick(), message, now, out)
        return out

    def _publish(self, message: Message, now: float, out: list[Delivery]) -> None:
        if message.retain:
            self.retained.store(message)
        plain, groups = self.trie.match(message.topic)
        if len(plain) == 1:  # as _route_plain, inlined: the hot path of every publish
            for sub in plain[0].values():
                self._route(sub, message, now, out)
        elif plain:
            self._route_merged(plain, message, now, out)
        link = self.link
        if link is None:
            for group in groups:
                self._route(group.pick(), message, now, out)
        else:
            link.forward(message)  # the link balances shared groups cluster-wide

    def _route_plain(
        self,
        plain: list[dict[str, Subscription]],
        message: Message,
        now: float,
        out: list[Delivery],
    ) -> None:
        if len(plain) == 1:
            # One node matched: at most one subscription per session, no merging needed.
            for sub in plain[0].values():
                self._route(sub, message, now, out)
        elif plain:
            self._route_merged(plain, message, now, out)

    def _route(self, sub: Subscription, message: Message, now: float, out: list[Delivery]) -> None:
        session = sub.session
        if sub.no_local and message.sender == session.client_id:
            return
        qos = sub.qos if sub.qos < message.qos else message.qos
        retain = message.retain and sub.retain_as_published
        self._deliver(session, message, qos, retain, sub.sub_ids, now, out)

    def _route_merged(
        self,
        plain: list[dict[str, Subscription]],
        message: Message,
        now: float,
        out: list[Delivery],
    ) -> None:
        """Overlapping subscriptions of one client get ONE copy: the highest QoS, every
        subscription identifier ([MQTT-3.3.4-2], [MQTT-3.3.4-3])."""
        merged: dict[str, tuple[Session, int, bool, tuple[int, ...]]] = {}
        sender = message.sender
        for subs in plain:
            for client_id, sub in subs.items():
                if sub.no_local and sender == client_id:
                    continue
                qos = sub.qos if sub.qos < message.qos else message.qos
                retain = message.retain and sub.retain_as_published
                seen = merged.get(client_id)
                if seen is None:
                    merged[client_id] = (sub.session, qos, retain, sub.sub_ids)
                else:
                    merged[client_id] = (
                        sub.session,
                        max(seen[1], qos),
                        seen[2] or retain,
                        seen[3] + sub.sub_ids,
                    )
        for session, qos, retain, sub_ids in merged.values():
            self._deliver(session, message, qos, retain, sub_ids, now, out)

    def _deliver(
        self,
        session: Session,
        message: Message,
        qos: int,
        retain: bool,
        sub_ids: tuple[int, ...],
        now: float,
        out: list[Delivery],
        direct: bool = False,
    ) -> None:
        if session.connection is None:
            if qos == 0:
                self.stats.dropped_qos0_offline += 1
            elif not direct:  # a reply is for the connection that asked, never queued
                self._enqueue(session, Delivery(session, message, qos, retain, sub_ids))
            return
        may_receive = self.may_receive
        if may_receive is not None and not may_receive(session, message.topic):
            self.stats.dropped_not_authorized += 1
            return
        delivery = Delivery(session, message, qos, retain, sub_ids)
        if direct:
            delivery.direct = True
        if qos:
            if session.queue or len(session.inflight) >= session.receive_maximum:
                self._enqueue(session, delivery)
                return
            size = message.size
            if session.held_bytes + size > self.max_session_bytes:
                session.dropped += 1
                self.stats.dropped_session_bytes += 1
                return
            session.held_bytes += size
            pid = delivery.packet_id = session.allocate_packet_id()
            session.inflight[pid] = delivery
        out.append(delivery)

    def _enqueue(self, session: Session, delivery: Delivery) -> None:
        """Queue ``delivery`` unless a count or byte limit says drop it (the newest)."""
        stats = self.stats
        size = delivery.message.size
        queue = session.queue
        if queue is not None and len(queue) >= self.max_queued:
            stats.dropped_queue_full += 1
        elif session.held_bytes + size > self.max_session_bytes:
            stats.dropped_session_bytes += 1
        elif stats.queued_bytes + size > self.max_queued_bytes_total:
            stats.dropped_total_bytes += 1
        else:
            if queue is None:
                queue = session.queue = deque()
            queue.append(delivery)
            session.held_bytes += size
            stats.queued_bytes += size
            return
        session.dropped += 1

    def _drain(self, session: Session, now: float, out: list[Delivery]) -> None:
        queue = session.queue
        if queue is None:
            return
        may_receive = self.may_receive
        stats = self.stats
        while queue and len(session.inflight) < session.receive_maximum:
            delivery = queue.popleft()
            message = delivery.message
            stats.queued_bytes -= message.size
            if message.expired(now):
                session.held_bytes -= message.size
                stats.dropped_expired += 1
                continue
            if may_receive is not None and not may_receive(session, message.topic):
                session.held_bytes -= message.size
                stats.dropped_not_authorized += 1
                continue
            pid = delivery.packet_id = session.allocate_packet_id()
            session.inflight[pid] = delivery
            out.append(delivery)
        if not queue:
            session.queue = None

    def _discard(self, session: Session) -> None:
        """End ``session``: its subscriptions, and the bytes its queue counted."""
        queue = session.queue
        if queue is not None:
            self.stats.queued_bytes -= sum(d.message.size for d in queue)
            session.queue = None
        session.inflight.clear()
        session.held_bytes = 0
        link = self.link
        for sub in session.subscriptions.values():
            self.trie.remove(session.client_id, sub.topic_filter, sub.group)
            if link is not None:
                link.interest(sub.topic_filter, sub.group, False)
        session.subscriptions.clear()
        if link is not None:
            link.session_changed(session, True)
        session.timer_generation += 1
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def _schedule(self, when: float, session: Session) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, session.timer_generation, session))


def _drop_direct(session: Session) -> None:
    """Forget the replies addressed to the connection that just left the session."""
    inflight = session.inflight
    for pid in [pid for pid, d in inflight.items() if d.direct]:
        del inflight[pid]
    queue = session.queue
    if queue:
        kept = deque(d for d in queue if not d.direct)
        session.queue = kept or None
