"""CONNECT (authentication, session, will, CONNACK), takeover and client DISCONNECT.

CONNECT is the one packet whose handling awaits (the authenticator): the handler is ``_busy``
meanwhile, so later packets wait in the decoder. A refused CONNECT gets CONNACK with the
reason and the stream is closed without a will.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from lantern.mqtt.broker import Message
from lantern.mqtt.broker.handoff import SessionSnapshot, adopt
from lantern.mqtt.errors import ProtocolError
from lantern.mqtt.hooks import AuthResult, ConnectInfo
from lantern.mqtt.packets import Connack, Connect, Disconnect
from lantern.mqtt.primitives import MQTT5
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.handler_base import HandlerBase, log

__all__ = ["ConnectFlow"]

_NEVER = 0xFFFFFFFF
_CLAIM_TIMEOUT = 2.0  # seconds a CONNECT waits for the cluster's session directory


class ConnectFlow(HandlerBase):
    """CONNECT and DISCONNECT handling of a connection handler."""

    __slots__ = ()

    def _on_connect(self, connect: Connect) -> None:
        self._level = connect.protocol_level
        self._client_id = connect.client_id  # for logs until the CONNECT is accepted
        if not connect.client_id and connect.protocol_level != MQTT5 and not connect.clean_start:
            # [MQTT-3.1.3-8] 3.1.1: an empty client id needs clean session.
            self._refuse(ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id")
            return
        stream = self._stream
        assert stream is not None
        info = ConnectInfo(
            client_id=connect.client_id,
            username=connect.username,
            password=connect.password,
            peer_cert_der=stream.peer_cert_der,
            peer_chain_der=stream.peer_chain_der,
            listener=stream.listener,
            remote_address=stream.remote_address,
            protocol_level=connect.protocol_level,
        )
        self._busy = True
        self._task = self._server.loop.create_task(self._authenticate(connect, info))

    async def _authenticate(self, connect: Connect, info: ConnectInfo) -> None:
        try:
            result = await self._server.authenticator.authenticate(info)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("authenticator failed for %s", info.remote_address)
            result = AuthResult(identity=None, reason_code=ReasonCode.UNSPECIFIED_ERROR)
        if self._closed:
            return
        if result.identity is None:
            code = result.reason_code
            if code < 0x80:
                code = ReasonCode.NOT_AUTHORIZED
            self._refuse(code, result.reason or "refused by authenticator")
            self._task = None
            return
        snapshot = None
        if self._server.claims is not None:
            claimed = await self._claim(connect, result)
            if isinstance(claimed, bool) or self._closed:
                self._task = None
                return
            snapshot = claimed
        if snapshot is not None:
            server = self._server
            principal = result.principal if result.principal is not None else result.identity
            adopt(server.broker, snapshot, principal, server.loop.time())
            # Its subscriptions are routed here before CONNACK (messages arriving meanwhile
            # queue in the session), as a SUBACK waits for them.
            settled = server.routes_settled(False) if server.routes_settled is not None else None
            if settled is not None:
                try:
                    await asyncio.wait_for(settled, _CLAIM_TIMEOUT)
                except Exception as exc:
                    log.warning("routes of %r not confirmed (%r)", snapshot.client_id, exc)
            if self._closed:
                self._task = None
                return
        try:
            self._accept(connect, result)
        except ProtocolError as exc:
            self._protocol_error(exc)
        if result.valid_until is not None and self.session is not None:
            self.end_at(result.valid_until)
        self._resume()

    async def _claim(self, connect: Connect, result: AuthResult) -> SessionSnapshot | bool | None:
        """Ask the cluster for this client id (another node closes its connection and hands
        its session over). False: refused (another principal's session, CONNACK 0x87)."""
        claims = self._server.claims
        assert claims is not None
        client_id = result.assigned_client_id or connect.client_id
        if not client_id:
            return None  # a generated client id is new everywhere
        principal = result.principal if result.principal is not None else result.identity
        clean_start = connect.clean_start or not result.persistent_session
        try:
            outcome = await asyncio.wait_for(
                claims.claim(client_id, clean_start, principal), _CLAIM_TIMEOUT
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the cluster is unreachable: the client is served here
            log.warning(
                "cluster session lookup failed for %r (%r); its session starts here",
                client_id,
                exc,
            )
            return None
        if self._closed:
            return False
        if outcome.refused:
            log.info(
                "refused %r: its session on another node belongs to another principal", client_id
            )
            self._refuse(ReasonCode.NOT_AUTHORIZED, "client id owned by another principal")
            return False
        return outcome.snapshot

    def _owned_by_another(self, client_id: str, principal: object) -> bool:
        """Refuse a client id whose session belongs to another principal (CONNACK 0x87)."""
        if not self._server.broker.owned_by_another(client_id, principal):
            return False
        self._refuse(
            ReasonCode.NOT_AUTHORIZED,
            f"the client id {client_id!r} belongs to a session of another principal",
        )
        return True

    def _refuse(self, code: ReasonCode, why: str) -> None:
        """CONNACK ``code`` and close; counted by reason code and logged (rate-limited)."""
        server = self._server
        name = code.name.lower()
        server.stats.connects_refused[name] += 1
        peer = self.remote_address
        listener = self._stream.listener if self._stream is not None else "?"
        server.refusals.info(
            f"connect_{name}",
            "refused CONNECT from %s on %s (client %r): %s (CONNACK %s)",
            peer,
            listener,
            self._client_id,
            why,
            code.name,
            peer=peer,
            listener=listener,
            client_id=self._client_id,
            reason=name,
        )
        self._reason = why
        self._will_on_close = False
        self._send(Connack(False, code))
        self._close_stream()

    def _accept(self, connect: Connect, result: AuthResult) -> None:
        server = self._server
        cfg = server.config
        now = server.loop.time()
        level = connect.protocol_level
        props = connect.properties
        client_id = result.assigned_client_id or connect.client_id
        assigned = None
        if not client_id:
            client_id = f"auto-{uuid.uuid4().hex}"
        if client_id != connect.client_id and level == MQTT5:
            assigned = client_id
        principal = result.principal if result.principal is not None else result.identity
        if self._owned_by_another(client_id, principal):
            return
        clean_start = connect.clean_start or not result.persistent_session
        # Session Expiry: MQTT 5 property; 3.1.1 persistent session lasts session_expiry_max.
        if level == MQTT5:
            expiry = props.session_expiry_interval or 0
        else:
            expiry = 0 if clean_start else cfg.session_expiry_max
        granted_expiry = None
        if not result.persistent_session:
            self._expiry_cap = 0  # a later DISCONNECT cannot make it persistent either
            if expiry:
                expiry = granted_expiry = 0
        elif expiry > cfg.session_expiry_max:
            expiry = cfg.session_expiry_max
            granted_expiry = expiry
        keepalive = connect.keep_alive
        server_keepalive = None
        if keepalive == 0 or keepalive > cfg.keepalive_max:
            keepalive = cfg.keepalive_max
            server_keepalive = keepalive
        self._client_id = client_id
        self._identity = result.identity
        will_message, will_delay = self._will(connect, client_id, now)
        client_max = props.maximum_packet_size if level == MQTT5 else None
        self._max_out = client_max
        # Outbound topic aliases go through ServerConnection.send (slower, per packet).
        self._fast_path = not (level == MQTT5 and props.topic_alias_maximum)
        outcome = server.broker.connect(
            client_id,
            self,
            protocol_level=level,
            clean_start=clean_start,
            expiry_interval=expiry,
            receive_maximum=(props.receive_maximum or 65535) if level == MQTT5 else 65535,
            will=will_message,
            will_delay=will_delay,
            owner=principal,
            now=now,
        )
        self.session = outcome.session
        old = outcome.taken_over
        if isinstance(old, ConnectFlow):
            old.taken_over()
        connack_props = EMPTY_PROPERTIES
        if level == MQTT5:
            connack_props = Properties(
                session_expiry_interval=granted_expiry,
                assigned_client_identifier=assigned,
                server_keep_alive=server_keepalive,
                retain_available=True,
                wildcard_subscription_available=True,
                subscription_identifier_available=True,
                shared_subscription_available=True,
            )
        self._send(Connack(outcome.session_present, ReasonCode.SUCCESS, connack_props))
        self._keepalive = keepalive * 1.5
        if self._timer is not None:
            self._timer.cancel()
        self._timer = server.loop.call_at(self._last_activity + self._keepalive, self._check_alive)
        server.dispatch(outcome.deliveries)
        if server.events is not None:
            try:
                server.events.connected(self)
            except Exception:
                log.exception("ConnectionEvents.connected failed")

    def _will(self, connect: Connect, client_id: str, now: float) -> tuple[Message | None, int]:
        """The will to hand the broker (None if absent or not authorized) and its delay."""
        will = connect.will
        if will is None:
            return None, 0
        if not self._server.authorizer.may_publish(self, will.topic):
            log.info("will of %s on a topic it may not publish to: dropped", client_id)
            return None, 0
        will_props = will.properties
        will_delay = will_props.will_delay_interval or 0
        if will_props.will_delay_interval is not None:
            will_props = replace(will_props, will_delay_interval=None)
        message = Message(
            will.topic, will.payload, will.qos, will.retain, will_props, sender=client_id, now=now
        )
        return message, will_delay

    def taken_over(self) -> None:
        """Another connection took this client id: DISCONNECT 0x8E, close, keep the session."""
        had_session = self.session is not None
        self.session = None  # the broker already moved it to the new connection
        self._shutdown(ReasonCode.SESSION_TAKEN_OVER, "session taken over")
        events = self._server.events
        if had_session and events is not None:  # the session's end is not reported otherwise
            try:
                events.disconnected(self, "session taken over")
            except Exception:
                log.exception("ConnectionEvents.disconnected failed")

    def _on_disconnect(self, packet: Disconnect) -> None:
        # Raising it from 0 ([MQTT-3.14.2-2]) was refused by ServerConnection already.
        expiry = packet.properties.session_expiry_interval
        if expiry is not None:
            cap = self._expiry_cap
            self._disconnect_expiry = min(expiry, cap) if expiry != _NEVER else cap
        self._will_on_close = packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL
        self._reason = "client disconnected"
        self._close_stream()
