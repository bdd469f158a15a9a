"""AWS IoT lifecycle (presence) events: ``$aws/events/presence/{connected,disconnected}/<id>``.

Plugged into the MQTT server as its :class:`~lantern.mqtt.hooks.ConnectionEvents` only when
``aws.events`` contains ``"presence"`` (off by default: nothing is built, nothing runs). The
payloads are AWS's (docs/aws-control-plane.md); they are published as the server, so every
subscriber allowed to receive them gets them, on every cluster node.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from lantern.gateway.identity import ClaimIdentity, ThingIdentity, UserIdentity
from lantern.mqtt.hooks import ClientHandle

__all__ = ["PresenceEvents", "disconnect_reason"]

Publish = Callable[[str, bytes, int], None]  # topic, payload, QoS

# The server's close reasons (lantern.mqtt.server) -> AWS's documented disconnectReason.
_REASONS: tuple[tuple[str, str], ...] = (
    ("client disconnected", "CLIENT_INITIATED_DISCONNECT"),
    ("session taken over", "DUPLICATE_CLIENTID"),
    ("keep alive timeout", "MQTT_KEEP_ALIVE_TIMEOUT"),
    ("connection lost", "CONNECTION_LOST"),
    ("credentials expired", "AUTH_ERROR"),
    ("protocol error", "CLIENT_ERROR"),
    ("closed by server (NOT_AUTHORIZED)", "AUTH_ERROR"),
    ("closed by server", "SERVER_INITIATED_DISCONNECT"),
)


def disconnect_reason(reason: str) -> str:
    """AWS's ``disconnectReason`` for one of the MQTT server's close reasons."""
    for prefix, name in _REASONS:
        if reason.startswith(prefix):
            return name
    return "SERVER_INITIATED_DISCONNECT"


def _principal(identity: object) -> str:
    if isinstance(identity, ThingIdentity | ClaimIdentity):
        return identity.certificate_id
    if isinstance(identity, UserIdentity):
        return identity.username
    return "anonymous"


def _ip(remote_address: str) -> str:
    host = remote_address.rpartition(":")[0] if ":" in remote_address else remote_address
    return host.strip("[]")


class PresenceEvents:
    """Publishes a connected event per CONNACK and a disconnected event per session end."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        # Per live connection: (sessionIdentifier, versionNumber), shared by its two events.
        self._sessions: dict[int, tuple[str, int]] = {}

    def connected(self, client: ClientHandle) -> None:
        client_id = client.client_id
        now = _now_ms()
        session = (str(uuid.uuid4()), now)
        self._sessions[id(client)] = session
        self._emit("connected", client, client_id, now, session, {})

    def disconnected(self, client: ClientHandle, reason: str) -> None:
        session = self._sessions.pop(id(client), None)
        if session is None:  # never reported as connected
            return
        name = disconnect_reason(reason)
        extra: dict[str, object] = {
            "clientInitiatedDisconnect": name == "CLIENT_INITIATED_DISCONNECT",
            "disconnectReason": name,
        }
        self._emit("disconnected", client, client.client_id, _now_ms(), session, extra)

    def _emit(
        self,
        kind: str,
        client: ClientHandle,
        client_id: str,
        now: int,
        session: tuple[str, int],
        extra: dict[str, object],
    ) -> None:
        if "#" in client_id or "+" in client_id:  # as AWS: no events for such ids
            return
        payload: dict[str, object] = {
            "clientId": client_id,
            "timestamp": now,
            "eventType": kind,
            **extra,
            "sessionIdentifier": session[0],
            "principalIdentifier": _principal(client.identity),
            "ipAddress": _ip(str(getattr(client, "remote_address", ""))),
            "versionNumber": session[1],
        }
        topic = f"$aws/events/presence/{kind}/{client_id}"
        # QoS 1: a persistent subscriber that is briefly away still gets every event.
        self._publish(topic, json.dumps(payload, separators=(",", ":")).encode(), 1)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
