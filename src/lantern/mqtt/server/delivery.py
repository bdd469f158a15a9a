"""Outbound PUBLISH (the broker's decisions) and the client's acknowledgements of them.

Fast path: the message's cached encoding for (level, QoS, retain, subscription ids), with the
packet identifier patched in, written as is. Connections with outbound topic aliases go through
:meth:`ServerConnection.send`, which picks the alias. A PUBLISH larger than the client's
Maximum Packet Size is discarded as if delivered ([MQTT-3.1.2-25]).

A client that does not read: once its unsent bytes pass ``write_buffer_limit``, QoS 0 messages
to it are dropped (counted) and QoS 1/2 ones wait in ``_deferred`` as broker decisions (the
shared message, no per-connection bytes), in order, until the buffer drains
(``resume_writing``). So what one connection holds in encoded bytes stays about
``write_buffer_limit`` plus one packet; what its session holds is capped by the broker
(``max_session_bytes``).
"""

from __future__ import annotations

from collections import deque

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
        if self._write_paused or self._deferred is not None:  # maybe far above high water
            over = stream.write_buffer_size() > self._server.config.write_buffer_limit
            if not delivery.qos:
                if over:
                    self._server.stats_qos0_dropped_slow += 1
                    return
            elif over or self._deferred is not None:
                if self._deferred is None:
                    self._deferred = deque()
                self._deferred.append(delivery)
                return
        self._write_publish(delivery, now)

    def write_deferred(self) -> None:
        """Write waiting QoS 1/2 deliveries while the write buffer is under its limit."""
        deferred = self._deferred
        stream = self._stream
        if deferred is None or stream is None or self._closed:
            return
        limit = self._server.config.write_buffer_limit
        now = self._server.loop.time()
        while deferred and stream.write_buffer_size() <= limit and not self._closed:
            self._write_publish(deferred.popleft(), now)
        if not deferred and self._deferred is deferred:
            self._deferred = None

    def _write_publish(self, delivery: Delivery, now: float) -> None:
        stream = self._stream
        assert stream is not None
        message = delivery.message
        qos = delivery.qos
        if self._fast_path:
            encoded = message.encoded(self._level, qos, delivery.retain, delivery.sub_ids, now)
            pid = delivery.packet_id
            data = encoded.data if pid is None else encoded.with_packet_id(pid, delivery.dup)
            limit = self._max_out
            if limit is None or len(data) <= limit:
                self._server.stats.packets_out[Publish] += 1
                self._lstats.bytes_out += len(data)
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
                self._server.stats.packets_out[Publish] += 1
                self._lstats.bytes_out += len(data)
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
