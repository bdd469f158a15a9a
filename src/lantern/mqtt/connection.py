"""Per-connection MQTT protocol state for the server side, sans-I/O (in the style of h11).

Bytes in (``receive_data``), packets out (``next_event``), packets to bytes (``send``). The
object never touches a socket or a clock; the asyncio server owns both.

States and transitions are data (``_INBOUND`` / ``_OUTBOUND``)::

    AWAIT_CONNECT --CONNECT in--> CONNECTING --CONNACK 0x00 out--> CONNECTED
    CONNECTING --CONNACK >= 0x80 out--> CLOSED
    CONNECTING/CONNECTED --DISCONNECT in or out--> CLOSED
    CONNECTING/CONNECTED --DISCONNECT in raising Session Expiry from 0--> ERROR
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
* The CONNECT's Session Expiry Interval (MQTT 5; absent = 0): a client DISCONNECT that sets a
  non-zero interval when it was 0 is a protocol error ([MQTT-3.14.2-2]), so the connection
  goes to ERROR (the server answers DISCONNECT 0x82 and, the disconnection not being normal,
  publishes the will) instead of CLOSED.
* A successful CONNACK is completed with our ``topic_alias_maximum``, ``receive_maximum`` and
  ``maximum_packet_size`` unless the packet sets them (then its values are adopted).
"""

from __future__ import annotations

import struct
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
_PUBACK = struct.Struct("!BBH")  # a successful PUBACK: the same bytes at every level


def _names(table: dict[type[Packet], ConnectionState]) -> str:
    return ", ".join(sorted(t.__name__.upper() for t in table)) or "nothing"


class ServerConnection:
    """One client connection as seen by the server.

    ``max_packet_size`` bounds what we accept; ``topic_alias_maximum`` and ``receive_maximum``
    are what we advertise in CONNACK. ``outbound_topic_aliases=False`` never aliases outbound.
    """

    __slots__ = (
        "_connack_sent",
        "_connect_session_expiry",
        "_decoder",
        "_inbound_aliases",
        "_inbound_inflight",
        "_outbound_aliases",
        "_outbound_inflight",
        "client_maximum_packet_size",
        "client_receive_maximum",
        "client_topic_alias_maximum",
        "dropped_publishes",
        "last_send_dropped",
        "max_packet_size",
        "maximum_qos",
        "outbound_topic_aliases",
        "protocol_level",
        "receive_maximum",
        "retain_available",
        "state",
        "topic_alias_maximum",
    )

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
        self._connect_session_expiry = 0
        # Created when first needed: an idle connection holds none of them.
        self._inbound_aliases: dict[int, str] | None = None
        self._outbound_aliases: dict[str, int] | None = None
        self._inbound_inflight: set[int] | None = None
        self._outbound_inflight: set[int] | None = None

    @property
    def outbound_quota(self) -> int:
        """QoS 1/2 PUBLISH packets the client's Receive Maximum still allows us to send."""
        inflight = self._outbound_inflight
        return self.client_receive_maximum - (0 if inflight is None else len(inflight))

    @property
    def inbound_inflight(self) -> int:
        """QoS 1/2 PUBLISH packets received and not yet completed by our acknowledgement."""
        inflight = self._inbound_inflight
        return 0 if inflight is None else len(inflight)

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
            new_state = table.get(type(packet))
            if new_state is None:
                ptype = type(packet)
                if ptype is Connect:
                    raise ProtocolViolation("[MQTT-3.1.0-2] a second CONNECT is a protocol error")
                raise ProtocolViolation(
                    f"[MQTT-2.1.2] a client may not send {ptype.__name__.upper()} in state "
                    f"{state.name}; expected one of {_names(table)}"
                )
            # Exact type checks, most frequent first: this runs for every packet.
            if type(packet) is Publish:
                packet = self._receive_publish(packet)
            elif (
                type(packet) is Puback
                or type(packet) is Pubcomp
                or (type(packet) is Pubrec and packet.reason_code >= 0x80)
            ):
                if self._outbound_inflight is not None:
                    self._outbound_inflight.discard(packet.packet_id)
            elif type(packet) is Connect:
                self._receive_connect(packet)
            elif type(packet) is Disconnect:
                self._receive_disconnect(packet)
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
            self._connect_session_expiry = props.session_expiry_interval or 0

    def _receive_disconnect(self, packet: Disconnect) -> None:
        expiry = packet.properties.session_expiry_interval
        if expiry and not self._connect_session_expiry:
            raise ProtocolViolation(
                "[MQTT-3.14.2-2] Session Expiry Interval cannot change from 0 on DISCONNECT"
            )

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
                aliases = self._inbound_aliases
                if aliases is None:
                    aliases = self._inbound_aliases = {}
                if topic:
                    aliases[alias] = topic
                else:
                    known = aliases.get(alias)
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
            if inflight is None:
                inflight = self._inbound_inflight = set()
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
                if self._inbound_inflight is not None:
                    self._inbound_inflight.discard(packet.packet_id)
            elif isinstance(packet, Disconnect) and level != MQTT5:
                self.state = S.CLOSED
                return b""
            data = self._fit(packet, level)
        self.state = new_state
        return data

    def send_puback(self, packet_id: int) -> bytes:
        """``send(Puback(packet_id))`` without building the packet: the hot path of QoS 1."""
        if self.state is not S.CONNECTED or not 0 < packet_id <= 0xFFFF:
            return self.send(Puback(packet_id))
        inflight = self._inbound_inflight
        if inflight is not None:
            inflight.discard(packet_id)
        self.last_send_dropped = False
        return _PUBACK.pack(0x40, 2, packet_id)

    def _send_publish(self, packet: Publish, level: int) -> bytes:
        new_alias = 0
        if (
            level == MQTT5
            and self.client_topic_alias_maximum
            and self.outbound_topic_aliases
            and packet.properties.topic_alias is None
        ):
            aliases = self._outbound_aliases
            if aliases is None:
                aliases = self._outbound_aliases = {}
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
            assert self._outbound_aliases is not None
            self._outbound_aliases[packet.topic] = new_alias
        if packet.packet_id is not None and packet.qos:
            if self._outbound_inflight is None:
                self._outbound_inflight = set()
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
