"""The MQTT server's plug points: authentication, authorization, interception, events.

The server knows nothing of what a certificate means, of AWS topics or of storage. The gateway
layer plugs into it through the protocols below (layers: docs/architecture.md):

* :class:`Authenticator` turns a CONNECT (with the client's verified certificate) into an
  opaque identity, or refuses it with a reason code.
* :class:`Authorizer` allows or denies publish, subscribe and receive, per topic.
* :class:`PublishInterceptor` sees every inbound PUBLISH (after ``may_publish``) and may handle
  it itself instead of routing it; the PUBACK is sent only after ``intercept`` returns. Calls
  of one connection are pipelined (concurrent, outcomes applied in receive order).
* :class:`ConnectionEvents` observes connections coming and going.

:class:`AllowAllAuthenticator` and :class:`AllowAllAuthorizer` are TEMPORARY defaults: any client
whose certificate chains to the platform CA (the TLS listener already verified that) connects
with full access, until the gateway plugs in the device registry and its policies.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

from lantern.mqtt.properties import EMPTY_PROPERTIES, Properties
from lantern.mqtt.reason_codes import ReasonCode

__all__ = [
    "AllowAllAuthenticator",
    "AllowAllAuthorizer",
    "AuthResult",
    "Authenticator",
    "Authorizer",
    "ClientHandle",
    "ConnectInfo",
    "ConnectionEvents",
    "InboundPublish",
    "PublishInterceptor",
]


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What an authenticator knows about a connecting client."""

    client_id: str  # as sent ("" if the client sent none)
    username: str | None
    password: bytes | None
    peer_cert_der: bytes | None  # leaf certificate of an mTLS client, DER
    peer_chain_der: tuple[bytes, ...]  # leaf first, as presented (may be just the leaf)
    listener: str  # listener name: "mqtts", "mqtt-alpn", "tcp", "ws"
    remote_address: str
    protocol_level: int  # 4 or 5


@dataclass(frozen=True, slots=True)
class AuthResult:
    """An authenticator's answer. ``identity`` None means refused with ``reason_code``.

    ``principal`` (hashable) owns the sessions this connection creates: a connection of another
    principal presenting the same client id while that session exists (live or persisted) is
    refused, and the session and its connection are untouched. None means the identity itself.
    ``persistent_session`` False forces Clean Start and Session Expiry 0 (nothing of the
    session outlives the connection).
    ``valid_until``: when the credentials stop being valid (seconds since the epoch, wall
    clock; None = no end). The server closes the connection then: MQTT 5 DISCONNECT 0x98
    (administrative action), 3.1.1 just closed.
    ``reason``: why a refused client was refused, for the server's log (an identifier may be
    in it, never a secret).
    """

    identity: object | None
    reason_code: ReasonCode = ReasonCode.SUCCESS
    assigned_client_id: str | None = None
    principal: Hashable | None = None
    persistent_session: bool = True
    valid_until: float | None = None
    reason: str | None = None


class ClientHandle(Protocol):
    """What hooks see of one live connection."""

    @property
    def client_id(self) -> str: ...

    @property
    def identity(self) -> object: ...

    @property
    def protocol_level(self) -> int: ...

    def deliver(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> None:
        """Send a PUBLISH to THIS connection only, whether or not it subscribed."""
        ...

    def close(self, reason_code: ReasonCode) -> None:
        """Send DISCONNECT with ``reason_code`` (MQTT 5) and close the connection."""
        ...


class Authenticator(Protocol):
    async def authenticate(self, info: ConnectInfo) -> AuthResult: ...


class Authorizer(Protocol):
    def may_publish(self, client: ClientHandle, topic: str) -> bool: ...

    def may_subscribe(self, client: ClientHandle, topic_filter: str) -> bool: ...

    def may_receive(self, client: ClientHandle, topic: str) -> bool: ...


@dataclass(slots=True, unsafe_hash=True)
class InboundPublish:
    """A PUBLISH as an interceptor sees it (topic alias already resolved).

    Read-only by contract. Not a ``frozen`` dataclass only because one is created per inbound
    PUBLISH and a frozen dataclass's constructor costs about 4x a plain one."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties


class PublishInterceptor(Protocol):
    async def intercept(self, client: ClientHandle, message: InboundPublish) -> ReasonCode | None:
        """Called for every PUBLISH (after ``may_publish``).

        None = not ours, route normally. A ReasonCode = handled here, not routed; it is the
        PUBACK reason for QoS 1 (MQTT 5), and the PUBACK is sent only after this coroutine
        returns (so a handler can acknowledge after its commit). An exception = PUBACK 0x80
        for that message only.

        Calls start eagerly (like asyncio's eager task factory): the code before the first
        real suspension runs at once, inside the server's read callback, in a copy of the
        current context and with no current task (``asyncio.current_task()`` is None there, so
        ``asyncio.timeout`` belongs after the first ``await`` that suspends). A call that
        returns without suspending ("not ours") costs no task; one that suspends continues in
        a task of its own.

        Calls are pipelined: the connection keeps reading while calls run, so up to Receive
        Maximum calls of ONE connection run concurrently. They start in receive order (work
        queued before the first ``await`` keeps the client's order) and may finish in any
        order; their outcomes (PUBACK/PUBREC, routing) are applied in receive order. A call is
        never cancelled when its connection closes; nothing is sent to that connection then.
        """
        ...


class ConnectionEvents(Protocol):
    """Optional observer of connections."""

    def connected(self, client: ClientHandle) -> None: ...

    def disconnected(self, client: ClientHandle, reason: str) -> None: ...


class AllowAllAuthenticator:
    """TEMPORARY: accepts every client that reached CONNECT.

    On the mTLS listeners that means any certificate chaining to the platform CA (verified by
    TLS). The identity is the peer certificate (DER) or the client id when there is none.
    """

    async def authenticate(self, info: ConnectInfo) -> AuthResult:
        identity: object = info.peer_cert_der if info.peer_cert_der is not None else info.client_id
        return AuthResult(identity=identity)


class AllowAllAuthorizer:
    """TEMPORARY: full access to every topic for every authenticated client."""

    def may_publish(self, client: ClientHandle, topic: str) -> bool:
        return True

    def may_subscribe(self, client: ClientHandle, topic_filter: str) -> bool:
        return True

    def may_receive(self, client: ClientHandle, topic: str) -> bool:
        return True
