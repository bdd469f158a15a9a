"""Handing a session from one node of a cluster to another (client-id takeover across nodes).

:func:`hand_off` ends the session on the node that holds it, exactly as a takeover on one node
would (its live connection is detached; the will is published at once when the new connection
starts clean or the will has no delay, and is otherwise cancelled because the session
continues), and returns a :class:`SessionSnapshot` of what the session carries on: its
subscriptions, the QoS 1/2 messages in flight (with their packet identifiers, and whether
PUBREL was already sent) and queued, in order, and the inbound QoS 2 identifiers awaiting
PUBREL. :func:`adopt` installs a snapshot on the node the client now connects to, before
:meth:`Broker.connect` resumes it (so ``sessionPresent`` is 1 and the messages are resent).
Direct replies (``deliver_direct``) belong to the old connection and are not handed over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lantern.mqtt.broker.core import Broker
from lantern.mqtt.broker.message import Message
from lantern.mqtt.broker.session import Delivery, Session
from lantern.mqtt.broker.trie import Subscription

__all__ = ["HeldMessage", "SessionSnapshot", "SubscriptionState", "adopt", "hand_off"]


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    key: str  # the filter as subscribed, with any $share/<group>/ prefix
    topic_filter: str
    qos: int
    no_local: bool
    retain_as_published: bool
    retain_handling: int
    subscription_id: int | None
    group: str | None


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A QoS 1/2 delivery held by the session: in flight (``packet_id`` set) or queued."""

    message: Message
    qos: int
    retain: bool
    sub_ids: tuple[int, ...]
    packet_id: int | None
    released: bool  # QoS 2: PUBREC received, PUBREL sent


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    client_id: str
    protocol_level: int
    expiry_interval: int
    next_packet_id: int
    subscriptions: list[SubscriptionState] = field(default_factory=list)
    held: list[HeldMessage] = field(default_factory=list)  # in flight first, then queued
    qos2_received: list[int] = field(default_factory=list)


def hand_off(
    broker: Broker, session: Session, clean_start: bool, now: float
) -> tuple[SessionSnapshot | None, list[Delivery]]:
    """End ``session`` here for a connection on another node. Returns the snapshot to resume
    (None when the new connection starts clean) and the deliveries of a will published now.
    The caller closes the old connection (DISCONNECT 0x8E)."""
    out: list[Delivery] = []
    will = session.will
    if session.connection is not None:
        session.connection = None
        if will is not None and (clean_start or session.will_delay == 0):
            out.extend(broker.publish(will.restamped(now), now))
    elif session.will_due is not None and will is not None and clean_start:
        out.extend(broker.publish(will.restamped(now), now))
    session.will = None
    session.will_due = None
    snapshot = None if clean_start else _snapshot(session)
    broker._discard(session)
    return snapshot, out


def _snapshot(session: Session) -> SessionSnapshot:
    subs = [
        SubscriptionState(
            key,
            sub.topic_filter,
            sub.qos,
            sub.no_local,
            sub.retain_as_published,
            sub.retain_handling,
            sub.subscription_id,
            sub.group,
        )
        for key, sub in session.subscriptions.items()
    ]
    held = [
        HeldMessage(d.message, d.qos, d.retain, d.sub_ids, pid, d.released)
        for pid, d in session.inflight.items()
        if not d.direct
    ]
    held.extend(
        HeldMessage(d.message, d.qos, d.retain, d.sub_ids, None, False)
        for d in session.queue or ()
        if not d.direct
    )
    return SessionSnapshot(
        session.client_id,
        session.protocol_level,
        session.expiry_interval,
        session.next_packet_id,
        subs,
        held,
        sorted(session.qos2_received or ()),
    )


def adopt(broker: Broker, snapshot: SessionSnapshot, owner: object, now: float) -> bool:
    """Install ``snapshot`` as an offline session of ``owner``; False (and nothing changed)
    if a session of that client id already exists here."""
    if snapshot.client_id in broker.sessions:
        return False
    session = Session(snapshot.client_id, snapshot.protocol_level, owner)
    session.expiry_interval = snapshot.expiry_interval
    session.next_packet_id = snapshot.next_packet_id
    if snapshot.qos2_received:
        session.qos2_received = set(snapshot.qos2_received)
    broker.sessions[session.client_id] = session
    for state in snapshot.subscriptions:
        sub = Subscription(
            session,
            state.topic_filter,
            state.qos,
            no_local=state.no_local,
            retain_as_published=state.retain_as_published,
            retain_handling=state.retain_handling,
            subscription_id=state.subscription_id,
            group=state.group,
        )
        session.subscriptions[state.key] = sub
        broker.trie.add(sub)
        if broker.link is not None:
            broker.link.interest(sub.topic_filter, sub.group, True)
    queue: deque[Delivery] = deque()
    for held in snapshot.held:
        delivery = Delivery(session, held.message, held.qos, held.retain, held.sub_ids)
        size = held.message.size
        session.held_bytes += size
        if held.packet_id is not None:
            delivery.packet_id = held.packet_id
            delivery.released = held.released
            session.inflight[held.packet_id] = delivery
        else:
            queue.append(delivery)
            broker.stats.queued_bytes += size
    if queue:
        session.queue = queue
    return True
