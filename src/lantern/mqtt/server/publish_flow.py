"""Inbound PUBLISH: authorize, intercept (optional, pipelined), route through the broker, ack.

QoS 2 follows method B of the spec: the message is routed on PUBLISH and its packet identifier
remembered in the session until PUBREL, so a resent PUBLISH is acknowledged but not routed
again ([MQTT-4.3.3-10]). A denied or intercepted-away message is acknowledged with the reason
code on MQTT 5 and with success on 3.1.1 (which has no negative acknowledgement).

Pipelining (with a :class:`~lantern.mqtt.hooks.PublishInterceptor`): the connection keeps
reading while interceptor calls run, so a device can have up to Receive Maximum QoS 1
observations awaiting their commit at once.

* Each PUBLISH's interceptor call starts at once, eagerly: its first step runs inside the
  read callback (in a context of its own), so calls begin in receive order (a handler that
  enqueues its work before its first ``await`` keeps the client's order). A call that
  returns without suspending (the usual "not ours") is applied at once when nothing is
  pending (no task, no queue entry: the fast path), else queued as done. A call that
  suspends gets a :class:`PendingInbound` at the tail of ``_pending`` and continues in a task
  of its own; such calls run concurrently and may complete in any order.
* Outcomes are applied from the head only, strictly in receive order: an entry whose call has
  returned waits for every earlier one. Applying means PUBACK/PUBREC with the interceptor's
  reason, or, when it returned None, routing to subscribers and then acking. So PUBACKs and
  PUBRECs go out in the order the PUBLISHes came ([MQTT-4.6.0-2], [MQTT-4.6.0-3]) and a
  message routed normally (B) never overtakes an earlier one still in the interceptor (A),
  whatever their topics: ordering holds per client across all topics, stronger than the
  per-topic order the spec requires ([MQTT-4.6.0-5]). The price is that B reaches
  subscribers after A's call returns (its PUBACK has to wait for A's anyway).
* SUBSCRIBE, UNSUBSCRIBE and PUBREL wait in ``_pending`` too (they change who receives the
  earlier messages or which QoS 2 identifiers are known); PINGREQ and the client's
  acknowledgements of our PUBLISHes are handled at once. A QoS 2 PUBLISH whose packet
  identifier is still in play (known from an earlier QoS 2 exchange or pending) also waits,
  then is handled as if alone, so a resend is never routed twice.
* An interceptor that raises: that one PUBLISH gets 0x80 (Unspecified error, MQTT 5); the
  others are unaffected.
* Bounds: at most Receive Maximum QoS 1/2 publishes are unacknowledged (the codec answers
  DISCONNECT 0x93 beyond it); packets stop being taken and reading pauses while more than
  Receive Maximum entries are pending (QoS 0 included) or the write buffer is high.
* Close (client DISCONNECT, connection lost, protocol error, takeover, server stop) while
  calls are pending: nothing more is sent on the connection (the client's DISCONNECT already
  closed our side of the protocol) and calls are never cancelled: their data may be being
  committed. Their outcomes are still applied in order, routing included (the server did
  receive those messages; a QoS 1 one the client resends is a permitted duplicate), except a
  QoS 2 message whose session moved to a new connection (the client resends it there). The
  session is handed back to the broker (will, expiry) only after the last of them, so a will
  never overtakes a message sent before it. Waiting SUBSCRIBE/UNSUBSCRIBE/PUBREL are dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any

from lantern.mqtt.broker import Message
from lantern.mqtt.connection import ConnectionState
from lantern.mqtt.errors import ProtocolError
from lantern.mqtt.hooks import InboundPublish
from lantern.mqtt.packets import Packet, Puback, Pubcomp, Publish, Pubrec, Pubrel
from lantern.mqtt.primitives import MQTT5
from lantern.mqtt.properties import EMPTY_PROPERTIES
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.handler_base import HandlerBase, log

# Outcomes that mean "the server failed", not "the message is bad": never acknowledged on 3.1.1.
_SERVER_FAILURES = frozenset(
    {
        ReasonCode.UNSPECIFIED_ERROR,
        ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR,
        ReasonCode.SERVER_BUSY,
        ReasonCode.QUOTA_EXCEEDED,
    }
)

__all__ = ["InboundPublishFlow", "PendingInbound"]


class PendingInbound:
    """A packet waiting for its turn: a PUBLISH in the interceptor (``done`` once it
    returned, ``code`` its answer, None = route), or a packet to handle in order."""

    __slots__ = ("code", "done", "packet", "waits")

    def __init__(self, packet: Packet, *, waits: bool) -> None:
        self.packet = packet
        self.waits = waits  # True: handle the packet at its turn (no interceptor call)
        self.done = waits
        self.code: ReasonCode | None = None


class InboundPublishFlow(HandlerBase):
    """PUBLISH and PUBREL from the client."""

    __slots__ = ()

    def _on_publish(self, packet: Publish, *, at_head: bool = False) -> None:
        server = self._server
        session = self.session
        assert session is not None
        qos = packet.qos
        pid = packet.packet_id
        received = session.qos2_received
        pending = self._pending
        if qos == 2 and pending and not at_head and self._qos2_in_play(pid, received, pending):
            self._defer(packet)
            return
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
        # Eager start (as asyncio's eager task factory): the call's first step runs now, in a
        # context of its own. Most calls finish there ("not ours" is decided without awaiting
        # anything): no task, and with nothing pending ahead, no queue entry either.
        context = contextvars.copy_context()
        call = interceptor.intercept(self, message)
        code: ReasonCode | None
        try:
            step = context.run(call.send, None)
        except StopIteration as stop:
            code = stop.value
        except Exception:
            log.exception("publish interceptor failed on a message from %s", self._client_id)
            code = ReasonCode.UNSPECIFIED_ERROR
        else:
            entry = PendingInbound(packet, waits=False)
            self._enqueue(entry, at_head)
            task = server.loop.create_task(self._intercept(entry, call, step), context=context)
            server.track(task)
            return
        if at_head or not pending:
            self._apply_outcome(packet, code)
        else:
            entry = PendingInbound(packet, waits=False)
            entry.code = code
            entry.done = True
            self._enqueue(entry, at_head)  # earlier calls still running: wait for them

    def _enqueue(self, entry: PendingInbound, at_head: bool) -> None:
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        if at_head:
            pending.appendleft(entry)  # it was at the head, waiting for its turn
        else:
            pending.append(entry)

    @staticmethod
    def _qos2_in_play(
        pid: int | None, received: set[int] | None, pending: deque[PendingInbound]
    ) -> bool:
        """Is a QoS 2 identifier known already (its PUBLISH could be a resend)?"""
        if received is not None and pid in received:
            return True
        return any(
            isinstance(e.packet, Publish | Pubrel) and e.packet.packet_id == pid for e in pending
        )

    def _defer(self, packet: Packet) -> None:
        assert self._pending is not None
        self._pending.append(PendingInbound(packet, waits=True))

    async def _intercept(
        self,
        entry: PendingInbound,
        call: Coroutine[Any, Any, ReasonCode | None],
        step: Any,
    ) -> None:
        """The rest of an interceptor call whose first step yielded ``step``."""
        try:
            code = await _rest_of(call, step)
        except asyncio.CancelledError:
            self._finished(entry, ReasonCode.UNSPECIFIED_ERROR)
            raise
        except Exception:
            log.exception("publish interceptor failed on a message from %s", self._client_id)
            code = ReasonCode.UNSPECIFIED_ERROR
        self._finished(entry, code)

    def _finished(self, entry: PendingInbound, code: ReasonCode | None) -> None:
        """An interceptor call returned: apply every outcome now at the head, in order."""
        entry.code = code
        entry.done = True
        pending = self._pending
        assert pending is not None
        while pending and pending[0].done:
            head = pending.popleft()
            try:
                self._apply(head)
            except ProtocolError as exc:
                self._protocol_error(exc)
        if self._closed:
            if not pending and self._gone:
                self._end_session()
            return
        self._continue()

    def _apply(self, entry: PendingInbound) -> None:
        packet = entry.packet
        if entry.waits:
            if not self._closed:
                self._handle_in_order(packet)
            return
        assert isinstance(packet, Publish)
        self._apply_outcome(packet, entry.code)

    def _apply_outcome(self, packet: Publish, code: ReasonCode | None) -> None:
        if code is not None:
            self._ack(packet, code)
        elif packet.qos == 2 and self.session is None:
            pass  # taken over: the client resends it on its new connection (exactly once)
        else:
            self._route(packet)

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
        raw = packet.raw
        if (
            raw is not None
            and not raw[0] & 0x09  # neither retain nor DUP
            and packet.properties is EMPTY_PROPERTIES
            and (self._level != MQTT5 or not raw[-len(packet.payload) - 1])  # empty props
        ):
            message.prime(self._level, raw, len(packet.payload))
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
            if code in _SERVER_FAILURES:
                # 3.1.1 has no negative PUBACK. Acknowledging would tell the client that a message
                # we failed to handle (e.g. a failed commit) is safe; closing instead makes it
                # resend the unacknowledged message when it reconnects.
                log.warning(
                    "closing %s: a QoS %d message could not be handled (0x%02X)",
                    self._client_id,
                    qos,
                    code,
                )
                self.close(ReasonCode.UNSPECIFIED_ERROR)
                return
            code = ReasonCode.SUCCESS
        if qos == 1:
            if code == ReasonCode.SUCCESS and self._conn.state is ConnectionState.CONNECTED:
                stream = self._stream
                if stream is not None and not stream.is_closing():
                    data = self._conn.send_puback(pid)
                    self._server.stats.packets_out[Puback] += 1
                    self._lstats.bytes_out += len(data)
                    stream.write(data)
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


@types.coroutine
def _rest_of(
    call: Coroutine[Any, Any, ReasonCode | None], step: Any
) -> Generator[Any, Any, ReasonCode | None]:
    """Drive a coroutine that was started by hand (its first step yielded ``step``) to its end
    under the current task: what it yields goes to the task, what the task sends or throws in
    goes back to it."""
    while True:
        try:
            sent = yield step
        except GeneratorExit:
            call.close()
            raise
        except BaseException as exc:  # thrown in by the task (e.g. a cancellation)
            try:
                step = call.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                step = call.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
