"""Inbound PUBLISH: authorize, intercept (optional, awaited), route through the broker, ack.

QoS 2 follows method B of the spec: the message is routed on PUBLISH and its packet identifier
remembered in the session until PUBREL, so a resent PUBLISH is acknowledged but not routed
again ([MQTT-4.3.3-10]). A denied or intercepted-away message is acknowledged with the reason
code on MQTT 5 and with success on 3.1.1 (which has no negative acknowledgement).
"""

from __future__ import annotations

from lantern.mqtt.broker import Message
from lantern.mqtt.hooks import InboundPublish
from lantern.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel
from lantern.mqtt.primitives import MQTT5
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.handler_base import HandlerBase, log

__all__ = ["InboundPublishFlow"]


class InboundPublishFlow(HandlerBase):
    """PUBLISH and PUBREL from the client."""

    __slots__ = ()

    def _on_publish(self, packet: Publish) -> None:
        server = self._server
        session = self.session
        assert session is not None
        qos = packet.qos
        pid = packet.packet_id
        received = session.qos2_received
        if qos == 2 and received is not None and pid in received:
            self._send(Pubrec(pid))  # a resend: already routed once ([MQTT-4.3.3-10])
            return
        if not server.authorizer.may_publish(self, packet.topic):
            server.stats_publish_denied += 1
            denied = ReasonCode.NOT_AUTHORIZED if self._level == MQTT5 else ReasonCode.SUCCESS
            self._ack(packet, denied)
            return
        interceptor = server.interceptor
        if interceptor is None:
            self._route(packet)
            return
        message = InboundPublish(
            packet.topic, packet.payload, qos, packet.retain, packet.properties
        )
        self._busy = True
        self._task = server.loop.create_task(self._intercept(packet, message))

    async def _intercept(self, packet: Publish, message: InboundPublish) -> None:
        interceptor = self._server.interceptor
        assert interceptor is not None
        try:
            code = await interceptor.intercept(self, message)
        except Exception:
            log.exception("publish interceptor failed on a message from %s", self._client_id)
            code = ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
        if not self._closed:
            if code is None:
                self._route(packet)
            else:
                self._ack(packet, code)
        self._resume()

    def _route(self, packet: Publish) -> None:
        server = self._server
        now = server.loop.time()
        message = Message(
            packet.topic,
            packet.payload,
            packet.qos,
            packet.retain,
            packet.properties,
            sender=self._client_id,
            now=now,
        )
        deliveries = server.broker.publish(message, now)
        if packet.qos:
            self._ack(packet, ReasonCode.SUCCESS)
        if deliveries:
            server.dispatch(deliveries, now)

    def _ack(self, packet: Publish, code: ReasonCode) -> None:
        qos = packet.qos
        pid = packet.packet_id
        if not qos or pid is None:
            return
        if self._level != MQTT5:
            code = ReasonCode.SUCCESS
        if qos == 1:
            if code == ReasonCode.SUCCESS:
                stream = self._stream
                if stream is not None and not stream.is_closing():
                    stream.write(self._conn.send_puback(pid))
            else:
                self._send(Puback(pid, code))
        else:
            session = self.session
            if code < 0x80 and session is not None:
                if session.qos2_received is None:
                    session.qos2_received = set()
                session.qos2_received.add(pid)
            self._send(Pubrec(pid, code))

    def _on_pubrel(self, packet: Pubrel) -> None:
        session = self.session
        assert session is not None
        received = session.qos2_received
        if received is not None and packet.packet_id in received:
            received.discard(packet.packet_id)
            self._send(Pubcomp(packet.packet_id))
        else:
            self._send(Pubcomp(packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
