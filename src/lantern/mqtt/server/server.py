"""The asyncio MQTT server: listeners, the broker core, the hooks.

``MQTTServer(config, authenticator, authorizer, interceptor=None, events=None)``;
``await start()`` binds the configured listeners (``ports`` then holds each bound port, so tests
can use port 0); ``await stop()`` stops accepting, sends DISCONNECT 0x8B to MQTT 5 clients and
closes every connection, then waits for publish interceptor calls still running (they may be
committing what a client sent; each connection's are bounded by Receive Maximum). ``publish``
injects a message as the server, ``clients`` lists live connections, ``disconnect_clients``
kicks those matching a predicate.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import cast

from lantern.mqtt.broker import Broker, Delivery, Message, Session
from lantern.mqtt.broker.handoff import SessionSnapshot, hand_off
from lantern.mqtt.broker.link import ClusterLink, SessionClaims
from lantern.mqtt.errors import ListenerBindFailed
from lantern.mqtt.hooks import (
    AllowAllAuthorizer,
    Authenticator,
    Authorizer,
    ClientHandle,
    ConnectionEvents,
    PublishInterceptor,
)
from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode
from lantern.mqtt.server.config import MQTTServerConfig
from lantern.mqtt.server.handler import ConnectionHandler
from lantern.mqtt.server.stats import ServerStats
from lantern.mqtt.transport import Listener
from lantern.mqtt.transport.ssl_context import make_server_ssl_context
from lantern.mqtt.transport.tcp import start_tcp_listener
from lantern.mqtt.transport.tls import start_tls_listener
from lantern.ratelog import RateLimitedLog

__all__ = ["MQTTServer"]

log = logging.getLogger("lantern.mqtt.server")


class MQTTServer:
    """An MQTT 3.1.1 / 5.0 server. See the module docstring."""

    def __init__(
        self,
        config: MQTTServerConfig,
        authenticator: Authenticator,
        authorizer: Authorizer,
        interceptor: PublishInterceptor | None = None,
        events: ConnectionEvents | None = None,
    ) -> None:
        self.config = config
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.interceptor = interceptor
        self.events = events
        self.broker = Broker(
            max_inflight=config.max_inflight,
            max_queued=config.max_queued_messages,
            max_retained=config.max_retained_messages,
            max_retained_bytes=config.max_retained_bytes,
            max_session_bytes=config.max_session_bytes,
            max_queued_bytes_total=config.max_queued_bytes_total,
        )
        self._update_receive_check()
        self.handlers: set[ConnectionHandler] = set()
        # Publish interceptor calls in progress (a reference keeps each task alive; ``stop``
        # waits for them, they may be committing data).
        self.intercepting: set[asyncio.Task[None]] = set()
        self.listeners: dict[str, Listener] = {}
        self.stats_publish_denied = 0
        self.stats_qos0_dropped_slow = 0
        self.stats = ServerStats()
        #: INFO lines about refused TLS handshakes and CONNECTs, rate-limited per reason.
        self.refusals = RateLimitedLog(log, per_window=config.log_refusals_per_minute)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._drained: asyncio.Event | None = None
        # Set when stop() begins (a cluster node's /readyz then says it is draining).
        self.draining = False
        # A cluster's session directory (None on one node): asked before each CONNECT.
        self.claims: SessionClaims | None = None
        # Awaited before SUBACK when subscriptions changed what this node asks the cluster
        # for (None on one node): the route exists before the client is told it subscribed.
        # The argument says whether retained messages are to be sent too (then the node first
        # catches up with the cluster's retained messages).
        self.routes_settled: Callable[[bool], Awaitable[None] | None] | None = None

    def _update_receive_check(self) -> None:
        authorizer = self.authorizer
        if isinstance(authorizer, AllowAllAuthorizer):
            self.broker.may_receive = None  # skip a call per delivery
            return

        def may_receive(session: Session, topic: str) -> bool:
            handler = session.connection
            assert isinstance(handler, ConnectionHandler)
            return authorizer.may_receive(handler, topic)

        self.broker.may_receive = may_receive

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def ports(self) -> dict[str, int]:
        """Bound port of each running listener, by name (``mqtts``, ``mqtt-alpn``, ``tcp``,
        ``ws``)."""
        return {name: listener.port for name, listener in self.listeners.items()}

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, serve: bool = True) -> None:
        """Bind every configured listener; on failure, close those already bound. A listener
        that cannot bind raises :class:`ListenerBindFailed` naming it and its port. With
        ``serve=False`` the sockets are bound but accept nothing until :meth:`serve`."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        factory = self._new_handler
        try:
            if cfg.tls_port is not None or cfg.alpn_port is not None:
                assert cfg.cert_file and cfg.key_file and cfg.ca_file
                ctx = make_server_ssl_context(cfg.cert_file, cfg.key_file, cfg.ca_file)
                for name, port in (("mqtts", cfg.tls_port), ("mqtt-alpn", cfg.alpn_port)):
                    if port is not None:
                        self.listeners[name] = await _bound(
                            name,
                            cfg.host,
                            port,
                            start_tls_listener(
                                name,
                                cfg.host,
                                port,
                                factory,
                                ssl_context=ctx,
                                handshake_timeout=cfg.handshake_timeout,
                                max_connections=cfg.max_connections,
                                start_serving=serve,
                                refusals=self.refusals,
                                reuse_port=cfg.reuse_port,
                            ),
                        )
            if cfg.tcp_port is not None:
                self.listeners["tcp"] = await _bound(
                    "tcp",
                    cfg.host,
                    cfg.tcp_port,
                    start_tcp_listener(
                        "tcp",
                        cfg.host,
                        cfg.tcp_port,
                        factory,
                        max_connections=cfg.max_connections,
                        start_serving=serve,
                        reuse_port=cfg.reuse_port,
                    ),
                )
            if cfg.ws_port is not None:
                from lantern.mqtt.transport.websocket import start_ws_listener

                self.listeners["ws"] = await _bound(
                    "ws",
                    cfg.host,
                    cfg.ws_port,
                    start_ws_listener(
                        "ws",
                        cfg.host,
                        cfg.ws_port,
                        factory,
                        path="/mqtt",
                        handshake_timeout=cfg.handshake_timeout,
                        max_connections=cfg.max_connections,
                        start_serving=serve,
                        reuse_port=cfg.reuse_port,
                    ),
                )
        except BaseException:
            await self._close_listeners()
            raise

    def set_accepting(self, accepting: bool) -> None:
        """Accept new connections, or (False) close each new one at once; open connections
        stay either way. Used while a cluster node is not ready."""
        for listener in self.listeners.values():
            listener.accepting = accepting

    async def serve(self) -> None:
        """Start accepting on every listener bound by ``start(serve=False)``."""
        for listener in self.listeners.values():
            await listener.start_serving()

    async def stop(
        self,
        reason: ReasonCode = ReasonCode.SERVER_SHUTTING_DOWN,
        timeout: float = 5.0,
        *,
        server_reference: str | None = None,
    ) -> None:
        """Stop accepting, DISCONNECT ``reason`` to MQTT 5 clients (with a Server Reference
        property naming ``server_reference``, another server to use, if given), close every
        connection. :attr:`draining` is True from the start of the stop."""
        self.draining = True
        await self._close_listeners()
        props = (
            EMPTY_PROPERTIES
            if server_reference is None
            else Properties(server_reference=server_reference)
        )
        for handler in list(self.handlers):
            handler.close(reason, props)
        if self.handlers:
            self._drained = asyncio.Event()
            try:
                await asyncio.wait_for(self._drained.wait(), timeout)
            except TimeoutError:
                log.warning("%d MQTT connections did not close in time", len(self.handlers))
                for handler in list(self.handlers):
                    handler.abort()
        if self.intercepting:
            _, late = await asyncio.wait(set(self.intercepting), timeout=timeout)
            if late:
                log.warning("%d publish interceptor calls still running after stop", len(late))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _close_listeners(self) -> None:
        listeners = list(self.listeners.values())
        self.listeners.clear()
        for listener in listeners:
            await listener.close()

    def _new_handler(self) -> ConnectionHandler:
        return ConnectionHandler(self)

    # -- API for the layers above --------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> None:
        """Publish as the server, routed to subscribers (``may_receive`` applies)."""
        now = self.loop.time()
        message = Message(topic, payload, qos, retain, properties, sender=None, now=now)
        self.dispatch(self.broker.publish(message, now))

    # -- cluster (lantern.mqtt.broker.link) ----------------------------------------------

    def join_cluster(
        self,
        link: ClusterLink,
        claims: SessionClaims,
        routes_settled: Callable[[bool], Awaitable[None] | None],
    ) -> None:
        """Route through ``link`` and ask ``claims`` about client ids (before serving)."""
        self.broker.link = link
        self.claims = claims
        self.routes_settled = routes_settled

    def deliver_remote(self, message: Message) -> None:
        """A message from another node: to this node's matching plain subscriptions."""
        now = self.loop.time()
        self.dispatch(self.broker.publish_remote(message, now), now)

    def deliver_shared(self, message: Message, group: str, topic_filter: str) -> None:
        """A message the cluster gave this node's members of ``$share/group/topic_filter``."""
        now = self.loop.time()
        self.dispatch(self.broker.publish_shared(message, group, topic_filter, now), now)

    def hand_off(
        self, client_id: str, clean_start: bool, owner: str
    ) -> tuple[str, SessionSnapshot | None]:
        """Another node accepts ``client_id``: close its connection here (DISCONNECT 0x8E),
        end the session here and return it. ``owner`` is ``repr`` of the new connection's
        principal. Returns ("none"|"refused"|"ok", snapshot)."""
        session = self.broker.sessions.get(client_id)
        if session is None:
            return "none", None
        if repr(session.owner) != owner:
            return "refused", None
        handler = session.connection
        now = self.loop.time()
        snapshot, deliveries = hand_off(self.broker, session, clean_start, now)
        if isinstance(handler, ConnectionHandler):
            handler.taken_over()
        self.dispatch(deliveries, now)
        return "ok", snapshot

    def clients(self) -> Iterable[ClientHandle]:
        """Connections that completed CONNECT."""
        return [h for h in self.handlers if h.session is not None]

    def disconnect_clients(
        self, predicate: Callable[[ClientHandle], bool], reason_code: ReasonCode
    ) -> int:
        """Close every connected client ``predicate`` selects; returns how many."""
        chosen = [h for h in self.handlers if h.session is not None and predicate(h)]
        for handler in chosen:
            handler.close(reason_code)
        return len(chosen)

    # -- internals -----------------------------------------------------------------------

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep an interceptor call's task until it is done."""
        self.intercepting.add(task)
        task.add_done_callback(self.intercepting.discard)

    def handler_closed(self, handler: ConnectionHandler) -> None:
        self.handlers.discard(handler)
        if not self.handlers and self._drained is not None:
            self._drained.set()

    def dispatch(self, deliveries: list[Delivery], now: float | None = None) -> None:
        """Write broker decisions to their sessions' connections (``now``: the loop's time,
        if the caller has it)."""
        if not deliveries:
            return
        if now is None:
            now = self.loop.time()
        for delivery in deliveries:
            # Sessions of this server only ever hold its ConnectionHandlers.
            handler = cast(ConnectionHandler | None, delivery.session.connection)
            if handler is not None:
                handler.write_delivery(delivery, now)

    def arm_timer(self) -> None:
        """(Re)schedule the broker's time-driven work (delayed wills, session expiry)."""
        deadline = self.broker.next_deadline()
        if deadline is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.dispatch(self.broker.tick(self.loop.time()))
        self.arm_timer()


async def _bound(name: str, host: str, port: int, starting: Awaitable[Listener]) -> Listener:
    """``starting``'s listener; an address that cannot be bound becomes
    :class:`ListenerBindFailed` naming the listener and its port."""
    try:
        return await starting
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenerBindFailed(name, host, port, exc.errno, why) from exc
