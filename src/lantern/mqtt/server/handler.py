"""One client connection: the transport's StreamReceiver and the hooks' ClientHandle.

Ties the sans-I/O :class:`ServerConnection` (wire protocol), the :class:`Broker` (routing,
sessions) and the hooks (authentication, authorization, interception). The state, the packet
loop, sending and closing are in :mod:`~lantern.mqtt.server.handler_base`; each family of
packets has its own part (CONNECT/DISCONNECT, inbound PUBLISH, outbound delivery), joined here
with the transport callbacks, the dispatch and SUBSCRIBE/UNSUBSCRIBE.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from lantern.mqtt.broker import Delivery, Subscription
from lantern.mqtt.errors import ProtocolViolation
from lantern.mqtt.packets import (
    Auth,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from lantern.mqtt.primitives import MQTT5
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.connect_flow import ConnectFlow
from lantern.mqtt.server.delivery import OutboundDelivery
from lantern.mqtt.server.handler_base import log
from lantern.mqtt.server.publish_flow import InboundPublishFlow
from lantern.mqtt.topics import parse_shared

if TYPE_CHECKING:
    from lantern.mqtt.transport import ByteStream

__all__ = ["ConnectionHandler"]

# Packets that change state earlier publishes depend on (subscriptions: who receives them;
# PUBREL: the QoS 2 identifiers): while publishes are pending they wait their turn. PINGREQ and
# the acknowledgements of our own PUBLISHes are independent of them and handled at once.
_IN_ORDER: frozenset[type[Packet]] = frozenset((Pubrel, Subscribe, Unsubscribe))


class ConnectionHandler(ConnectFlow, InboundPublishFlow, OutboundDelivery):
    """StreamReceiver for one accepted stream; ClientHandle once CONNECT succeeded."""

    __slots__ = ()

    # -- StreamReceiver ------------------------------------------------------------------

    def stream_opened(self, stream: ByteStream) -> None:
        self._stream = stream
        server = self._server
        server.handlers.add(self)
        lstats = self._lstats = server.stats.listener(stream.listener)
        lstats.open += 1
        lstats.accepted += 1
        self._last_activity = server.loop.time()
        self._timer = server.loop.call_later(server.config.connect_timeout, self._connect_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._last_activity = self._server.loop.time()
        self._lstats.bytes_in += len(data)
        self._conn.receive_data(data)
        self._process()

    def stream_closed(self, exc: BaseException | None) -> None:
        self._closed = True
        self._gone = True
        self._lstats.open -= 1
        server = self._server
        server.handler_closed(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._task
        if task is not None and not task.done() and self.session is None:
            task.cancel()  # an authentication in progress
        if self._pending:
            return  # interceptor calls finish their work; the last one ends the session
        self._end_session()

    def pause_writing(self) -> None:
        # Do not read more from a client we cannot write to.
        self._write_paused = True
        if self._stream is not None:
            self._stream.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._deferred is not None:
            self.write_deferred()
        self._continue()

    # -- dispatch ------------------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        # Ordered by frequency.
        if type(packet) is Publish:
            self._on_publish(packet)
        elif type(packet) is Puback or type(packet) is Pubcomp:
            self._completed(packet.packet_id)
        elif type(packet) is Pingreq:
            self._send(Pingresp())
        elif type(packet) is Pubrec:
            self._on_pubrec(packet)
        elif self._pending and type(packet) in _IN_ORDER:
            self._defer(packet)  # must not overtake the pending publishes
        elif type(packet) is Pubrel:
            self._on_pubrel(packet)
        elif type(packet) is Subscribe:
            self._on_subscribe(packet)
        elif type(packet) is Unsubscribe:
            self._on_unsubscribe(packet)
        elif type(packet) is Connect:
            self._on_connect(packet)
        elif type(packet) is Disconnect:
            self._on_disconnect(packet)
        elif type(packet) is Auth:
            raise ProtocolViolation("[MQTT-4.12.0-1] AUTH without an authentication method")

    def _handle_in_order(self, packet: Packet) -> None:
        if type(packet) is Publish:
            self._on_publish(packet, at_head=True)
        elif type(packet) is Pubrel:
            self._on_pubrel(packet)
        elif type(packet) is Subscribe:
            self._on_subscribe(packet)
        elif type(packet) is Unsubscribe:
            self._on_unsubscribe(packet)

    # -- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------

    def _on_subscribe(self, packet: Subscribe) -> None:
        server = self._server
        session = self.session
        assert session is not None
        v5 = self._level == MQTT5
        ids = packet.properties.subscription_identifiers
        sub_id = ids[0] if ids else None
        now = server.loop.time()
        codes: list[ReasonCode] = []
        deliveries: list[Delivery] = []
        cluster = server.routes_settled is not None
        later: list[tuple[Subscription, bool]] = []  # cluster: retained sent after catching up
        limit = server.config.max_subscriptions_per_connection
        for req in packet.subscriptions:
            group, real = parse_shared(req.topic_filter)
            if group is not None and req.no_local and v5:
                raise ProtocolViolation(
                    "[MQTT-3.8.3-4] No Local must not be set on a shared subscription"
                )
            if not server.authorizer.may_subscribe(self, req.topic_filter):
                codes.append(ReasonCode.NOT_AUTHORIZED)
                continue
            if (
                req.topic_filter not in session.subscriptions
                and len(session.subscriptions) >= limit
            ):
                codes.append(ReasonCode.QUOTA_EXCEEDED)
                continue
            sub = Subscription(
                session,
                real,
                req.qos,
                no_local=req.no_local,
                retain_as_published=req.retain_as_published,
                retain_handling=req.retain_handling,
                subscription_id=sub_id,
                group=group,
            )
            new, retained = server.broker.subscribe(
                session, req.topic_filter, sub, now, with_retained=not cluster
            )
            deliveries.extend(retained)
            if cluster and server.broker.wants_retained(sub, new):
                later.append((sub, new))
            codes.append(ReasonCode(req.qos))
        if server.routes_settled is not None:
            settled = server.routes_settled(bool(later))
            if settled is not None:
                # A cluster node: SUBACK once the other nodes route the new filters here, and
                # retained messages once this node has every change the cluster made to them.
                self._busy = True
                suback = Suback(packet.packet_id, tuple(codes))
                self._task = server.loop.create_task(
                    self._suback_when_routed(settled, suback, later)
                )
                return
            deliveries = [
                d for s, new in later for d in server.broker.retained_for(session, s, new, now)
            ]
        self._send(Suback(packet.packet_id, tuple(codes)))
        if deliveries:
            server.dispatch(deliveries)

    async def _suback_when_routed(
        self, settled: Awaitable[None], suback: Suback, later: list[tuple[Subscription, bool]]
    ) -> None:
        try:
            await settled
        except Exception:
            log.warning(
                "cluster routes for %r not confirmed; acknowledging the subscription",
                self._client_id,
                exc_info=True,
            )
        session = self.session
        if self._closed or session is None:
            return
        self._send(suback)
        broker = self._server.broker
        now = self._server.loop.time()
        deliveries = [d for s, new in later for d in broker.retained_for(session, s, new, now)]
        if deliveries:
            self._server.dispatch(deliveries, now)
        self._resume()

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        broker = self._server.broker
        codes = tuple(
            ReasonCode.SUCCESS
            if broker.unsubscribe(session, f)
            else ReasonCode.NO_SUBSCRIPTION_EXISTED
            for f in packet.topic_filters
        )
        self._send(Unsuback(packet.packet_id, codes))
