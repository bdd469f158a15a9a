"""Which node holds each client id's session, and handing sessions between nodes.

A JetStream key-value bucket (``lantern-<cluster>-clients``) maps each client id (URL-safe
base64) to the node that last accepted it. Before a CONNECT is accepted, the node reads the
entry; when another node holds the client id, it sends that node a request on
``<prefix>.node.<node>.takeover``. The holder closes the connection at once (MQTT 5 DISCONNECT
0x8E; 3.1.1 closed), handles the will as on one node, ends the session there and replies with
it (subscriptions, QoS 1/2 messages in flight and queued, in order) unless the new connection
starts clean; the new node installs it, so CONNACK says ``sessionPresent`` correctly. Then the
entry is set to the new node. If the holder is gone (no responder) or does not answer within
:data:`TAKEOVER_TIMEOUT`, the client starts a new session: a session kept only in the memory
of a node that died is lost (docs/cluster.md).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyNotFoundError

from lantern.cluster.envelope import decode, encode
from lantern.cluster.retained import topic_key
from lantern.mqtt.broker.handoff import HeldMessage, SessionSnapshot, SubscriptionState
from lantern.mqtt.broker.link import ClaimOutcome

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from lantern.cluster.bus import _OrderedClient
    from lantern.mqtt.server import MQTTServer

__all__ = ["TAKEOVER_TIMEOUT", "SessionDirectory"]

log = logging.getLogger("lantern.cluster")

TAKEOVER_TIMEOUT = 0.8  # seconds; the old connection must be closed within 1 s


class SessionDirectory:
    def __init__(
        self, client: _OrderedClient, server: MQTTServer, prefix: str, bucket: str, node: str
    ) -> None:
        self.client = client
        self.server = server
        self.prefix = prefix
        self.bucket = bucket
        self.node = node
        self._kv: KeyValue | None = None
        self.handed_off = 0
        self.taken_over = 0

    async def start(self) -> None:
        self._kv = await self.client.jetstream().create_key_value(bucket=self.bucket, history=1)
        await self.client.subscribe(f"{self.prefix}.node.{self.node}.takeover", cb=self._serve)
        await self.client.flush()

    async def claim(self, client_id: str, clean_start: bool, owner: object) -> ClaimOutcome:
        kv = self._kv
        assert kv is not None
        key = topic_key(client_id)
        try:
            entry = await kv.get(key)
            holder = entry.value.decode() if entry.value else None
        except KeyNotFoundError:
            holder = None
        outcome = ClaimOutcome()
        if holder == self.node:
            return outcome
        if holder is not None:
            request = json.dumps(
                {"client_id": client_id, "clean_start": clean_start, "owner": repr(owner)}
            ).encode()
            try:
                msg = await self.client.request(
                    f"{self.prefix}.node.{holder}.takeover", request, timeout=TAKEOVER_TIMEOUT
                )
                reply = json.loads(msg.data)
                if reply["status"] == "refused":
                    return ClaimOutcome(refused=True)
                if reply.get("session") is not None:
                    outcome.snapshot = _snapshot_from_json(reply["session"], self.server)
                    self.taken_over += 1
            except NoRespondersError:
                log.info("client %r was on node %s, which is gone: new session", client_id, holder)
            except NatsTimeout:
                log.warning("node %s did not hand over client %r in time", holder, client_id)
        await kv.put(key, self.node.encode())
        return outcome

    async def _serve(self, msg: Any) -> None:
        try:
            request = json.loads(msg.data)
            status, snapshot = self.server.hand_off(
                request["client_id"], bool(request["clean_start"]), str(request["owner"])
            )
            body: dict[str, Any] = {"status": status, "session": None}
            if snapshot is not None:
                body["session"] = _snapshot_to_json(snapshot, self.server)
                self.handed_off += 1
            await msg.respond(json.dumps(body).encode())
        except Exception:
            log.exception("takeover request not handled")


def _snapshot_to_json(snapshot: SessionSnapshot, server: MQTTServer) -> dict[str, Any]:
    now = server.loop.time()
    return {
        "client_id": snapshot.client_id,
        "protocol_level": snapshot.protocol_level,
        "expiry_interval": snapshot.expiry_interval,
        "next_packet_id": snapshot.next_packet_id,
        "qos2_received": snapshot.qos2_received,
        "subscriptions": [
            [
                s.key,
                s.topic_filter,
                s.qos,
                s.no_local,
                s.retain_as_published,
                s.retain_handling,
                s.subscription_id,
                s.group,
            ]
            for s in snapshot.subscriptions
        ],
        "held": [
            [
                base64.b64encode(encode(h.message, "", 0, now)).decode(),
                h.qos,
                h.retain,
                list(h.sub_ids),
                h.packet_id,
                h.released,
            ]
            for h in snapshot.held
        ],
    }


def _snapshot_from_json(data: dict[str, Any], server: MQTTServer) -> SessionSnapshot:
    now = server.loop.time()
    held = []
    for raw, qos, retain, sub_ids, packet_id, released in data["held"]:
        message = decode(base64.b64decode(raw), now).message
        held.append(HeldMessage(message, qos, retain, tuple(sub_ids), packet_id, released))
    return SessionSnapshot(
        client_id=data["client_id"],
        protocol_level=data["protocol_level"],
        expiry_interval=data["expiry_interval"],
        next_packet_id=data["next_packet_id"],
        subscriptions=[SubscriptionState(*s) for s in data["subscriptions"]],
        held=held,
        qos2_received=list(data["qos2_received"]),
    )
