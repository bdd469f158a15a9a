"""Outbound PUBLISH (the broker's decisions) and the client's acknowledgements of them.

Fast path: the message's cached encoding for (level, QoS, retain, subscription ids), with the
packet identifier patched in, written as is. Connections with outbound topic aliases go through
:meth:`ServerConnection.send`, which picks the alias. A PUBLISH larger than the client's
Maximum Packet Size is discarded as if delivered ([MQTT-3.1.2-25]).
"""

from __future__ import annotations

from lantern.mqtt.broker import Delivery
from lantern.mqtt.errors import LocalProtocolError
from lantern.mqtt.packets import Publish, Pubrec, Pubrel
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.handler_base import HandlerBase

__all__ = ["OutboundDelivery"]


class OutboundDelivery(HandlerBase):
    """Writing deliveries; PUBACK, PUBREC, PUBCOMP from the client."""

    __slots__ = ()

    def write_delivery(self, delivery: Delivery, now: float) -> None:
        """Write one broker decision (PUBLISH, or PUBREL when resuming QoS 2)."""
        stream = self._stream
        if self._closed or stream is None:
            return
        if delivery.released:
            self._send(Pubrel(delivery.packet_id or 0))
            return
        message = delivery.message
        qos = delivery.qos
        if not qos and stream.write_buffer_size() > self._server.config.write_buffer_limit:
            self._server.stats_qos0_dropped_slow += 1
            return
        if self._fast_path:
            encoded = message.encoded(self._level, qos, delivery.retain, delivery.sub_ids, now)
            pid = delivery.packet_id
            data = encoded.data if pid is None else encoded.with_packet_id(pid, delivery.dup)
            limit = self._max_out
            if limit is None or len(data) <= limit:
                stream.write(data)
                return
        else:
            packet = Publish(
                message.topic,
                message.payload,
                qos,
                delivery.retain,
                delivery.dup,
                delivery.packet_id,
                message.properties_for(delivery.sub_ids, now),
            )
            try:
                data = self._conn.send(packet)
            except LocalProtocolError:
                return
            if data:
                stream.write(data)
                return
        # Larger than the client's Maximum Packet Size: discarded as if delivered
        # ([MQTT-3.1.2-25]).
        if delivery.packet_id is not None and self.session is not None:
            more = self._server.broker.complete(self.session, delivery.packet_id, now)
            if more:
                self._server.dispatch(more, now)

    def _completed(self, packet_id: int) -> None:
        session = self.session
        assert session is not None
        server = self._server
        now = server.loop.time()
        more = server.broker.complete(session, packet_id, now)
        if more:
            server.dispatch(more, now)

    def _on_pubrec(self, packet: Pubrec) -> None:
        session = self.session
        assert session is not None
        if packet.reason_code >= 0x80:
            self._completed(packet.packet_id)
        elif self._server.broker.released(session, packet.packet_id):
            self._send(Pubrel(packet.packet_id))
        else:
            self._send(Pubrel(packet.packet_id, ReasonCode.PACKET_IDENTIFIER_NOT_FOUND))
