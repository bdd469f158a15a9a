"""A client's session state, and the delivery decisions the broker returns.

A :class:`Session` outlives its connections (MQTT 5 Session Expiry, 3.1.1 clean session = 0).
It holds the subscriptions, the outbound QoS 1/2 messages in flight (by packet identifier), the
queue of messages waiting for a free slot in the client's Receive Maximum window or for the
client to come back, and the inbound QoS 2 packet identifiers awaiting PUBREL.

Drop policy of the queue (documented in README): only QoS 1/2 messages are queued (QoS 0 to an
offline client is dropped, QoS 0 to an online client is sent at once, outside the window). When
the queue holds ``max_queued`` messages, the NEW message is dropped and counted in
``Session.dropped`` (and the broker's ``stats``): what was promised earlier stays in order. The
same holds when the message would take the session's held bytes (``held_bytes``: queued and in
flight) over ``max_session_bytes``, or all queues over ``max_queued_bytes_total``.
Expired messages are dropped when they reach the head of the queue.
"""

from __future__ import annotations

from collections import deque

from lantern.mqtt.broker.message import Message
from lantern.mqtt.broker.trie import Subscription

__all__ = ["NEVER_EXPIRES", "Delivery", "Session"]

NEVER_EXPIRES = 0xFFFFFFFF
"""Session Expiry Interval meaning "does not expire" ([MQTT-3.1.2-11])."""


class Delivery:
    """Decision: send ``message`` to ``session``'s connection as a PUBLISH.

    ``packet_id`` is None for QoS 0. While in flight (QoS > 0) the same object stays in
    ``Session.inflight``; ``released`` turns True once PUBREC arrived (QoS 2: PUBREL sent,
    waiting for PUBCOMP). ``dup`` is set on redelivery after a reconnect.
    """

    __slots__ = (
        "direct",
        "dup",
        "message",
        "packet_id",
        "qos",
        "released",
        "retain",
        "session",
        "sub_ids",
    )

    def __init__(
        self,
        session: Session,
        message: Message,
        qos: int,
        retain: bool,
        sub_ids: tuple[int, ...],
        packet_id: int | None = None,
    ) -> None:
        self.session = session
        self.message = message
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.packet_id = packet_id
        self.dup = False
        self.released = False
        # A reply to one connection (``Broker.deliver_direct``): it ends with that connection
        # and is never resent to a later one.
        self.direct = False


class Session:
    """State of one client id. ``connection`` is the live connection (opaque) or None;
    ``owner`` the principal (opaque, hashable) that created it."""

    __slots__ = (
        "client_id",
        "connection",
        "dropped",
        "expires_at",
        "expiry_interval",
        "held_bytes",
        "inflight",
        "next_packet_id",
        "owner",
        "protocol_level",
        "qos2_received",
        "queue",
        "receive_maximum",
        "subscriptions",
        "timer_generation",
        "will",
        "will_delay",
        "will_due",
    )

    def __init__(self, client_id: str, protocol_level: int, owner: object = None) -> None:
        self.client_id = client_id
        self.protocol_level = protocol_level
        # The principal that created the session; only it may resume or take it over.
        self.owner = owner
        self.connection: object | None = None
        # filter as subscribed (with any $share/<group>/ prefix) -> subscription
        self.subscriptions: dict[str, Subscription] = {}
        self.inflight: dict[int, Delivery] = {}
        # Created when first needed and the queue dropped again once drained: most sessions
        # never queue nor receive QoS 2, and an empty deque / set costs 0.5 KB / 0.2 KB.
        self.queue: deque[Delivery] | None = None
        self.next_packet_id = 1
        self.qos2_received: set[int] | None = None
        self.receive_maximum = 65535  # the client's, capped by the broker's max_inflight
        self.expiry_interval = 0  # seconds, NEVER_EXPIRES = never
        self.expires_at: float | None = None  # while offline
        self.will: Message | None = None
        self.will_delay = 0
        self.will_due: float | None = None  # a will waiting for its delay while offline
        self.dropped = 0
        self.held_bytes = 0  # Message.size of the deliveries in ``queue`` and ``inflight``
        self.timer_generation = 0

    def allocate_packet_id(self) -> int:
        """A packet identifier not in flight (the window is far below 65535, so one exists)."""
        pid = self.next_packet_id
        inflight = self.inflight
        while pid in inflight:
            pid = pid + 1 if pid < 0xFFFF else 1
        self.next_packet_id = pid + 1 if pid < 0xFFFF else 1
        return pid

    def window_open(self) -> bool:
        return len(self.inflight) < self.receive_maximum
