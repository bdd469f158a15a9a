"""Per-connection MQTT protocol state for the server side, sans-I/O (in the style of h11).

Bytes in (``receive_data``), packets out (``next_event``), packets to bytes (``send``). The
object never touches a socket or a clock; the asyncio server owns both.

States and transitions are data (``_INBOUND`` / ``_OUTBOUND``)::

    AWAIT_CONNECT --CONNECT in--> CONNECTING --CONNACK 0x00 out--> CONNECTED
    CONNECTING --CONNACK >= 0x80 out--> CLOSED
    CONNECTING/CONNECTED --DISCONNECT in or out--> CLOSED
    any --ProtocolError from next_event--> ERROR --CONNACK/DISCONNECT out--> CLOSED

In ERROR the server may still send the CONNACK (if none was sent yet) or DISCONNECT that
reports ``exc.reason_code``, then must close. In CLOSED and ERROR no more events are returned.

Wire state kept here (delivery state such as retries lives in the broker's session):

* Inbound topic aliases: events carry the resolved topic and no ``topic_alias`` property.
* Outbound topic aliases, first come first served: the first ``client_topic_alias_maximum``
  distinct topics sent get aliases 1, 2, ... for the life of the connection; a repeat is sent
  with an empty topic. Never evicted (no LRU churn, no extra bytes for one-off topics).
* Inbound Receive Maximum (MQTT 5): QoS 1/2 PUBLISH packets count until we send PUBACK,
  PUBCOMP or a PUBREC >= 0x80; one more than ``receive_maximum`` raises ReceiveMaximumExceeded.
* Outbound quota: ``outbound_quota`` is how many more QoS 1/2 PUBLISH packets the client's
  Receive Maximum allows now (informational; ``send`` does not refuse).
* Client Maximum Packet Size: a PUBLISH that would exceed it is dropped (``send`` returns b""
  and sets ``last_send_dropped``) as [MQTT-3.1.2-25] requires; other packets lose their reason
  string and user properties to fit, else LocalProtocolError.
* A successful CONNACK is completed with our ``topic_alias_maximum``, ``receive_maximum`` and
  ``maximum_packet_size`` unless the packet sets them (then its values are adopted).
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Any, cast

from lantern.mqtt.codec import DEFAULT_MAX_PACKET_SIZE, Decoder
from lantern.mqtt.errors import (
    LocalProtocolError,
    ProtocolError,
    ProtocolViolation,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    UnsupportedProtocolVersion,
)
from lantern.mqtt.packets import (
    Auth,
    Connack,
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
from lantern.mqtt.packets.publish import encode_publish
from lantern.mqtt.primitives import MQTT5, MQTT311
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode

__all__ = ["ConnectionState", "ServerConnection"]


class ConnectionState(Enum):
    """Where the connection is in its life."""

    AWAIT_CONNECT = "AWAIT_CONNECT"
    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


S = ConnectionState
_CLIENT_PACKETS = (Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Unsubscribe, Pingreq, Auth)
_SERVER_PACKETS = (Publish, Puback, Pubrec, Pubrel, Pubcomp, Suback, Unsuback, Pingresp, Auth)

# (state, packet type received) -> next state. Clients may send before they get CONNACK.
_INBOUND: dict[ConnectionState, dict[type[Packet], ConnectionState]] = {
    S.AWAIT_CONNECT: {Connect: S.CONNECTING},
    S.CONNECTING: {**dict.fromkeys(_CLIENT_PACKETS, S.CONNECTING), Disconnect: S.CLOSED},
    S.CONNECTED: {**dict.fromkeys(_CLIENT_PACKETS, S.CONNECTED), Disconnect: S.CLOSED},
}
# (state, packet type sent) -> next state (a refusing CONNACK goes to CLOSED instead).
_OUTBOUND: dict[ConnectionState, dict[type[Packet], ConnectionState]] = {
    S.CONNECTING: {Connack: S.CONNECTED, Auth: S.CONNECTING},
    S.CONNECTED: {**dict.fromkeys(_SERVER_PACKETS, S.CONNECTED), Disconnect: S.CLOSED},
    S.ERROR: {Connack: S.CLOSED, Disconnect: S.CLOSED},
}
_NO_TRANSITIONS: dict[type[Packet], ConnectionState] = {}


def _names(table: dict[type[Packet], ConnectionState]) -> str:
    return ", ".join(sorted(t.__name__.upper() for t in table)) or "nothing"


class ServerConnection:
    """One client connection as seen by the server.

    ``max_packet_size`` bounds what we accept; ``topic_alias_maximum`` and ``receive_maximum``
    are what we advertise in CONNACK. ``outbound_topic_aliases=False`` never aliases outbound.
    """

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        topic_alias_maximum: int = 0,
        receive_maximum: int = 65535,
        outbound_topic_aliases: bool = True,
    ) -> None:
        self.state = ConnectionState.AWAIT_CONNECT
        self.protocol_level: int | None = None
        self.max_packet_size = max_packet_size
        self.topic_alias_maximum = topic_alias_maximum
        self.receive_maximum = receive_maximum
        self.outbound_topic_aliases = outbound_topic_aliases
        # What the client told us in CONNECT.
        self.client_receive_maximum = 65535
        self.client_topic_alias_maximum = 0
        self.client_maximum_packet_size: int | None = None
        # What we granted in CONNACK beyond the limits above.
        self.maximum_qos = 2
        self.retain_available = True
        # Reporting of dropped oversize PUBLISH packets.
        self.last_send_dropped = False
        self.dropped_publishes = 0
        self._decoder = Decoder(max_packet_size)
        self._connack_sent = False
        self._inbound_aliases: dict[int, str] = {}
        self._outbound_aliases: dict[str, int] = {}
        self._inbound_inflight: set[int] = set()
        self._outbound_inflight: set[int] = set()

    @property
    def outbound_quota(self) -> int:
        """QoS 1/2 PUBLISH packets the client's Receive Maximum still allows us to send."""
        return self.client_receive_maximum - len(self._outbound_inflight)

    @property
    def inbound_inflight(self) -> int:
        """QoS 1/2 PUBLISH packets received and not yet completed by our acknowledgement."""
        return len(self._inbound_inflight)

    # -- inbound ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the socket; ignored once CLOSED or in ERROR."""
        if self.state is not S.CLOSED and self.state is not S.ERROR:
            self._decoder.feed(data)

    def next_event(self) -> Packet | None:
        """The next packet from the client, already checked against the protocol state.

        None means "need more data" (or CLOSED/ERROR). Raises a ProtocolError subclass whose
        ``reason_code`` the server should report; the connection is then in ERROR.
        """
        state = self.state
        if state is S.CLOSED or state is S.ERROR:
            return None
        try:
            packet = self._decoder.next_packet()
            if packet is None:
                return None
            table = _INBOUND[state]
            ptype = type(packet)
            new_state = table.get(ptype)
            if new_state is None:
                if ptype is Connect:
                    raise ProtocolViolation("[MQTT-3.1.0-2] a second CONNECT is a protocol error")
                raise ProtocolViolation(
                    f"[MQTT-2.1.2] a client may not send {ptype.__name__.upper()} in state "
                    f"{state.name}; expected one of {_names(table)}"
                )
            if isinstance(packet, Publish):
                packet = self._receive_publish(packet)
            elif isinstance(packet, Connect):
                self._receive_connect(packet)
            elif isinstance(packet, Puback | Pubcomp) or (
                isinstance(packet, Pubrec) and packet.reason_code >= 0x80
            ):
                self._outbound_inflight.discard(packet.packet_id)
        except ProtocolError as exc:
            self.state = S.ERROR
            if isinstance(exc, UnsupportedProtocolVersion):
                # Answer in the format the client can read: MQTT 5 above level 5, else 3.1.1.
                self.protocol_level = MQTT5 if exc.protocol_level > MQTT5 else MQTT311
            raise
        self.state = new_state
        return packet

    def _receive_connect(self, packet: Connect) -> None:
        self.protocol_level = packet.protocol_level
        if packet.protocol_level == MQTT5:
            props = packet.properties
            if props.receive_maximum is not None:
                self.client_receive_maximum = props.receive_maximum
            if props.topic_alias_maximum is not None:
                self.client_topic_alias_maximum = props.topic_alias_maximum
            self.client_maximum_packet_size = props.maximum_packet_size

    def _receive_publish(self, packet: Publish) -> Publish:
        if self.protocol_level != MQTT5:
            return packet
        props = packet.properties
        if props is not EMPTY_PROPERTIES:
            if props.subscription_identifiers:
                raise ProtocolViolation(
                    "[MQTT-3.3.4-6] a client PUBLISH must not carry a subscription identifier"
                )
            alias = props.topic_alias
            if alias is not None:
                if alias > self.topic_alias_maximum:
                    raise TopicAliasInvalid(
                        f"[MQTT-3.3.2.3.4] topic alias {alias} is above our maximum "
                        f"{self.topic_alias_maximum}"
                    )
                topic = packet.topic
                if topic:
                    self._inbound_aliases[alias] = topic
                else:
                    known = self._inbound_aliases.get(alias)
                    if known is None:
                        raise ProtocolViolation(
                            f"[MQTT-3.3.2.3.4] topic alias {alias} has no topic on this connection"
                        )
                    topic = known
                packet = replace(packet, topic=topic, properties=replace(props, topic_alias=None))
        qos = packet.qos
        if qos:
            if qos > self.maximum_qos:
                raise ProtocolViolation(
                    f"[MQTT-3.2.2.3.4] QoS {qos} is above the granted maximum QoS",
                    reason_code=ReasonCode.QOS_NOT_SUPPORTED,
                )
            inflight = self._inbound_inflight
            pid = packet.packet_id
            if pid is not None and pid not in inflight:
                if len(inflight) >= self.receive_maximum:
                    raise ReceiveMaximumExceeded(
                        f"[MQTT-3.3.4-9] more than receive maximum {self.receive_maximum} "
                        "unacknowledged QoS 1/2 PUBLISH packets"
                    )
                inflight.add(pid)
        if packet.retain and not self.retain_available:
            raise ProtocolViolation(
                "[MQTT-3.2.2-14] retain is not available on this server",
                reason_code=ReasonCode.RETAIN_NOT_SUPPORTED,
            )
        return packet

    # -- outbound --------------------------------------------------------------------------

    def send(self, packet: Packet) -> bytes:
        """Encode ``packet`` for this connection and advance the state.

        Returns b"" when nothing goes on the wire: a PUBLISH above the client's Maximum Packet
        Size (``last_send_dropped`` is then True), or DISCONNECT to a 3.1.1 client (which has
        no server DISCONNECT; just close). Raises LocalProtocolError if the packet is not
        allowed in the current state. If the CONNECT could not be read at all, a CONNACK is
        encoded in the 3.1.1 format.
        """
        state = self.state
        ptype = type(packet)
        new_state = _OUTBOUND.get(state, _NO_TRANSITIONS).get(ptype)
        if new_state is None or (state is S.ERROR and (ptype is Connack) is self._connack_sent):
            raise LocalProtocolError(
                f"cannot send {ptype.__name__.upper()} in state {state.name}; expected one of "
                f"{_names(_OUTBOUND.get(state, _NO_TRANSITIONS))}"
            )
        level = self.protocol_level or MQTT311
        self.last_send_dropped = False
        if isinstance(packet, Publish):
            data = self._send_publish(packet, level)
        else:
            if isinstance(packet, Connack):
                packet = self._prepare_connack(packet, level)
                self._connack_sent = True
                if packet.reason_code != ReasonCode.SUCCESS:
                    new_state = S.CLOSED
            elif isinstance(packet, Puback | Pubcomp) or (
                isinstance(packet, Pubrec) and packet.reason_code >= 0x80
            ):
                self._inbound_inflight.discard(packet.packet_id)
            elif isinstance(packet, Disconnect) and level != MQTT5:
                self.state = S.CLOSED
                return b""
            data = self._fit(packet, level)
        self.state = new_state
        return data

    def _send_publish(self, packet: Publish, level: int) -> bytes:
        new_alias = 0
        if (
            level == MQTT5
            and self.client_topic_alias_maximum
            and self.outbound_topic_aliases
            and packet.properties.topic_alias is None
        ):
            aliases = self._outbound_aliases
            alias = aliases.get(packet.topic)
            if alias is not None:
                data = encode_publish(packet, level, alias, omit_topic=True)
            elif len(aliases) < self.client_topic_alias_maximum:
                new_alias = len(aliases) + 1
                data = encode_publish(packet, level, new_alias)
            else:
                data = encode_publish(packet, level)
        else:
            data = encode_publish(packet, level)
        limit = self.client_maximum_packet_size
        if limit is not None and len(data) > limit:
            self.last_send_dropped = True
            self.dropped_publishes += 1
            return b""
        if new_alias:
            self._outbound_aliases[packet.topic] = new_alias
        if packet.packet_id is not None and packet.qos:
            self._outbound_inflight.add(packet.packet_id)
        return data

    def _prepare_connack(self, packet: Connack, level: int) -> Connack:
        if level != MQTT5 or packet.reason_code != ReasonCode.SUCCESS:
            return packet
        props = packet.properties
        changes: dict[str, int] = {}
        if props.topic_alias_maximum is None:
            if self.topic_alias_maximum:
                changes["topic_alias_maximum"] = self.topic_alias_maximum
        else:
            self.topic_alias_maximum = props.topic_alias_maximum
        if props.receive_maximum is None:
            if self.receive_maximum != 65535:
                changes["receive_maximum"] = self.receive_maximum
        else:
            self.receive_maximum = props.receive_maximum
        if props.maximum_packet_size is None:
            changes["maximum_packet_size"] = self.max_packet_size
        else:
            self.max_packet_size = self._decoder.max_packet_size = props.maximum_packet_size
        if props.maximum_qos is not None:
            self.maximum_qos = props.maximum_qos
        if props.retain_available is not None:
            self.retain_available = props.retain_available
        if changes:
            packet = replace(packet, properties=replace(props, **cast(Any, changes)))
        return packet

    def _fit(self, packet: Packet, level: int) -> bytes:
        data = packet.encode(level)
        limit = self.client_maximum_packet_size
        if limit is None or len(data) <= limit:
            return data
        props: Properties = getattr(packet, "properties", EMPTY_PROPERTIES)
        slim = replace(props, reason_string=None, user_properties=())
        slim_packet: Packet = replace(cast(Any, packet), properties=slim)
        data = slim_packet.encode(level)
        if len(data) > limit:
            raise LocalProtocolError(
                f"[MQTT-3.1.2-24] {type(packet).__name__.upper()} of {len(data)} bytes exceeds "
                f"the client's maximum packet size {limit}"
            )
        return data
