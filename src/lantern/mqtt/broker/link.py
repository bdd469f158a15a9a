"""The broker's plug point for a cluster: other nodes' subscribers, shared groups, sessions.

The broker stays a single-node core. With a :class:`ClusterLink` attached
(:attr:`Broker.link`), it also tells the link:

* every message it routes that started on this node (a client's PUBLISH, a server publish, a
  will): :meth:`ClusterLink.forward` sends it to the other nodes with a matching subscription;
* every subscription filter that appears or disappears here (:meth:`ClusterLink.interest`), so
  the link asks the other nodes only for messages someone here wants.

Messages arriving from other nodes enter through :meth:`Broker.publish_remote` (plain
subscriptions) and :meth:`Broker.publish_shared` (one member of one shared group); they are
never forwarded again. With a link, shared subscriptions are balanced by the link across the
cluster (one member cluster-wide), so the broker does not pick a local member itself.
Without a link (one node) nothing of this costs anything but one attribute test per publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lantern.mqtt.broker.handoff import SessionSnapshot
    from lantern.mqtt.broker.message import Message
    from lantern.mqtt.broker.session import Session

__all__ = ["ClaimOutcome", "ClusterLink", "SessionClaims"]


class ClusterLink(Protocol):
    def forward(self, message: Message) -> None:
        """A message that started on this node was routed here: send it to the cluster."""
        ...

    def interest(self, topic_filter: str, group: str | None, added: bool) -> None:
        """A subscription to ``topic_filter`` (in shared ``group``, or None) was added or
        removed on this node (called once per subscription, not per filter)."""
        ...

    def session_changed(self, session: Session, ended: bool) -> None:
        """``session`` was connected, disconnected or changed its subscriptions (``ended``:
        it no longer exists here). Lets the cluster keep persistent sessions' records."""
        ...


class SessionClaims(Protocol):
    """Where a cluster keeps track of which node holds each client id's session."""

    async def claim(self, client_id: str, clean_start: bool, owner: object) -> ClaimOutcome:
        """Before a CONNECT of ``client_id`` is accepted here: have the node that holds its
        session (if another one) close that connection and hand the session over."""
        ...


class ClaimOutcome:
    """``refused``: the session belongs to another principal (CONNACK 0x87).
    ``snapshot``: the session to resume here (None: nothing to resume)."""

    __slots__ = ("refused", "snapshot")

    def __init__(self, refused: bool = False, snapshot: SessionSnapshot | None = None) -> None:
        self.refused = refused
        self.snapshot = snapshot
