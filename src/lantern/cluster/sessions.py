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

The entry is a JSON record: the node, and for a persistent session (expiry > 0) also its owner,
protocol level, expiry, subscriptions and since when it is offline; while a will is pending,
also the will (an envelope), its delay and, once the connection ended, when it is due (wall
clock), so that a survivor publishes it when this node dies (:mod:`.orphans`). Each node
rewrites the records of its sessions when they connect, disconnect or change subscriptions
(coalesced, in a task; only while the record still names this node, by optimistic concurrency
on the entry's revision) and deletes them when they end. So when the holder is gone, the new
node still resumes the session's subscriptions (``sessionPresent`` = 1) unless it expired, and
publishes the dead connection's will at once unless the session continues and the will has a
delay not yet passed (then it is cancelled); the QoS 1/2 messages that were queued in the dead
node's memory are lost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError

from lantern.cluster.envelope import decode, encode
from lantern.cluster.retained import topic_key
from lantern.mqtt.broker.handoff import HeldMessage, SessionSnapshot, SubscriptionState
from lantern.mqtt.broker.link import ClaimOutcome

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from lantern.cluster.bus import _OrderedClient
    from lantern.mqtt.broker import Message, Session
    from lantern.mqtt.server import MQTTServer

__all__ = ["MAX_WILL_RECORD", "TAKEOVER_TIMEOUT", "SessionDirectory", "parse_record"]

log = logging.getLogger("lantern.cluster")

_CLAIM_ATTEMPTS = 3
# A takeover request for a client id this node claimed less than _PENDING_SECONDS ago whose
# session is not there yet (CONNACK pending) waits up to _PENDING_WAIT for it.
_PENDING_SECONDS = 3.0
_PENDING_WAIT = 0.5
TAKEOVER_TIMEOUT = 0.8  # seconds; the old connection must be closed within 1 s
PING_TIMEOUT = 0.5  # seconds a live node has to answer "are you there?"
MAX_WILL_RECORD = 64 * 1024  # bytes of an encoded will kept in a session's record


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
        self.restored = 0  # sessions resumed from their record (their node was gone)
        self._claimed: dict[str, float] = {}  # client id -> when this node last claimed it
        self._pending_tasks: set[asyncio.Task[None]] = set()
        self._arrivals: dict[str, asyncio.Event] = {}  # set when the session is there
        self._dirty: dict[str, None] = {}  # client ids whose record to rewrite, in order
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing waits to be written
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._kv = await self.client.jetstream().create_key_value(bucket=self.bucket, history=1)
        await self.client.subscribe(f"{self.prefix}.node.{self.node}.takeover", cb=self._serve)
        await self.client.flush()
        self._writer = asyncio.get_running_loop().create_task(self._write_records())

    async def stop(self) -> None:
        """Write what is pending (bounded), then stop the writer."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), 3)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def changed(self, client_id: str) -> None:
        """A session of this node connected, disconnected, changed or ended."""
        self._dirty[client_id] = None
        self._idle.clear()
        self._wake.set()
        arrived = self._arrivals.get(client_id)
        if arrived is not None:
            arrived.set()

    async def _write_records(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                client_id = next(iter(self._dirty))
                del self._dirty[client_id]
                try:
                    await self._write_record(client_id)
                except Exception as exc:
                    log.warning("session record of %r not written: %s", client_id, exc)
            self._idle.set()

    async def _write_record(self, client_id: str) -> None:
        kv = self._kv
        assert kv is not None
        key = topic_key(client_id)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            entry = None
        if entry is not None and parse_record(entry.value).get("node") != self.node:
            return  # another node holds it now
        record = self._record_of(client_id)
        if record is None:
            if entry is not None:
                with contextlib.suppress(Exception):  # changed meanwhile: not ours to delete
                    await kv.delete(key, last=entry.revision)
            return
        value = json.dumps(record).encode()
        if entry is not None and entry.value == value:
            return  # as stored (a session without expiry: its node is all there is)
        if entry is None:
            with contextlib.suppress(Exception):
                await kv.create(key, value)
        else:
            with contextlib.suppress(Exception):
                await kv.update(key, value, last=entry.revision)

    def _record_of(self, client_id: str) -> dict[str, Any] | None:
        """The record of this node's session ``client_id`` (None: it has none to keep)."""
        session = self.server.broker.sessions.get(client_id)
        if session is None:
            return None
        record: dict[str, Any] = {"node": self.node}
        will = session.will
        if will is not None:
            record.update(self._will_record(session, will))
        if session.expiry_interval > 0:
            record.update(
                owner=repr(session.owner),
                level=session.protocol_level,
                expiry=session.expiry_interval,
                offline_since=None if session.connection is not None else time.time(),
                subscriptions=[
                    [
                        key,
                        sub.topic_filter,
                        sub.qos,
                        sub.no_local,
                        sub.retain_as_published,
                        sub.retain_handling,
                        sub.subscription_id,
                        sub.group,
                    ]
                    for key, sub in session.subscriptions.items()
                ],
            )
        return record

    def _will_record(self, session: Session, will: Message) -> dict[str, Any]:
        """The fields of a session's record that let another node publish its will when this
        node dies: the will itself (an envelope: topic, payload, QoS, retain, properties,
        sender), its delay and, once the connection ended, when it is due (wall clock)."""
        now = self.server.loop.time()
        data = encode(will, "", 0, now)
        if len(data) > MAX_WILL_RECORD:
            return {}  # too big to keep in the directory: lost with its node (docs)
        due = session.will_due
        return {
            "will": base64.b64encode(data).decode(),
            "will_delay": session.will_delay,
            "will_due": None if due is None else time.time() + max(0.0, due - now),
        }

    async def ping(self, node: str, timeout: float = PING_TIMEOUT) -> str:
        """Whether the node process ``node`` (an origin) answers on NATS: "alive"; "gone" (no
        one listens for it); "silent" (someone listens but did not answer in time: busy, a
        machine NATS has not noticed the loss of yet, or an older version without pings)."""
        try:
            await self.client.request(
                f"{self.prefix}.node.{node}.takeover", b'{"ping": true}', timeout=timeout
            )
        except NoRespondersError:
            return "gone"
        except NatsTimeout:
            return "silent"
        return "alive"

    def publish_will(self, data: str) -> None:
        """Publish a will kept in a record (base64 envelope) on this node, to the cluster."""
        now = self.server.loop.time()
        message = decode(base64.b64decode(data), now).message.restamped(now)
        self.server.dispatch(self.server.broker.publish(message, now), now)

    @property
    def kv(self) -> KeyValue:
        assert self._kv is not None
        return self._kv

    async def claim(self, client_id: str, clean_start: bool, owner: object) -> ClaimOutcome:
        """Take ``client_id`` for this node (see the module docstring). The directory entry is
        written only if it is still as read: when two nodes claim one client id at once (two
        first connects), the loser reads the winner's entry and takes the session over from
        it, so one connection survives, as on one node."""
        for _ in range(_CLAIM_ATTEMPTS):
            outcome = await self._claim_once(client_id, clean_start, owner)
            if outcome is not None:
                return outcome
        log.info("client id %r claimed by several nodes at once; this node keeps it", client_id)
        kv = self._kv
        assert kv is not None
        await kv.put(topic_key(client_id), json.dumps({"node": self.node}).encode())
        return ClaimOutcome()

    def _note_claim(self, client_id: str) -> None:
        now = time.monotonic()
        if len(self._claimed) > 1024:  # forget old claims (only recent ones matter)
            self._claimed = {c: t for c, t in self._claimed.items() if now - t < _PENDING_SECONDS}
        self._claimed[client_id] = now

    async def _claim_once(
        self, client_id: str, clean_start: bool, owner: object
    ) -> ClaimOutcome | None:
        """One attempt of :meth:`claim`; None if another node changed the entry meanwhile."""
        kv = self._kv
        assert kv is not None
        key = topic_key(client_id)
        self._note_claim(client_id)
        entry: KeyValue.Entry | None
        try:
            entry = await kv.get(key)
            record = parse_record(entry.value)
        except KeyNotFoundError:
            entry, record = None, {}
        holder = record.get("node")
        outcome = ClaimOutcome()
        will_now = False  # the dead holder's connection left a will to publish now
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
            except (NoRespondersError, NatsTimeout) as exc:
                gone = isinstance(exc, NoRespondersError)
                log.info(
                    "client %r was on node %s, which %s: resuming from its record",
                    client_id,
                    holder,
                    "is gone" if gone else "did not answer in time",
                )
                if record.get("owner") is not None and record["owner"] != repr(owner):
                    return ClaimOutcome(refused=True)
                if not clean_start:
                    outcome.snapshot = _snapshot_from_record(client_id, record)
                    if outcome.snapshot is not None:
                        self.restored += 1
                # The will of the connection that died with its node (gone: not one that is
                # only slow to answer, which may still hold it): published now if the
                # session does not continue (clean start, expired, none kept) or it had no
                # delay (or its delay passed); a resumed session cancels a delayed will.
                will_now = (
                    gone
                    and "will" in record
                    and (
                        outcome.snapshot is None
                        or not record.get("will_delay")
                        or (record.get("will_due") or float("inf")) <= time.time()
                    )
                )
        value = json.dumps({"node": self.node}).encode()
        try:  # only if the entry is as read
            if entry is None:
                await kv.create(key, value)
            else:
                await kv.update(key, value, last=entry.revision)
        except (KeyWrongLastSequenceError, BadRequestError, APIError):
            # Changed meanwhile: a sweeper handled the will, or another node claimed the
            # client id. With a session in hand, this node keeps it; else it asks again.
            if outcome.snapshot is None and not will_now:
                return None
            will_now = False
            await kv.put(key, value)
        if will_now:
            self.publish_will(record["will"])
        return outcome

    async def _serve(self, msg: Any) -> None:
        try:
            request = json.loads(msg.data)
            if request.get("ping"):  # another node asks whether this one is alive
                await msg.respond(b'{"status": "alive"}')
                return
            client_id = request["client_id"]
            claimed = self._claimed.get(client_id)
            if (
                claimed is not None
                and time.monotonic() - claimed < _PENDING_SECONDS
                and client_id not in self.server.broker.sessions
            ):
                # Claimed here a moment ago, its CONNACK not sent yet: wait for the session
                # (in a task: other requests go on meanwhile), then hand it over.
                task = asyncio.get_running_loop().create_task(self._serve_pending(msg, request))
                self._pending_tasks.add(task)
                task.add_done_callback(self._pending_tasks.discard)
                return
            await self._hand_over(msg, request)
        except Exception:
            log.exception("takeover request not handled")

    async def _serve_pending(self, msg: Any, request: dict[str, Any]) -> None:
        client_id = request["client_id"]
        arrived = self._arrivals.setdefault(client_id, asyncio.Event())
        try:
            if client_id not in self.server.broker.sessions:
                await asyncio.wait_for(arrived.wait(), _PENDING_WAIT)
        except TimeoutError:
            pass  # refused or closed meanwhile: the request is answered as it stands
        finally:
            self._arrivals.pop(client_id, None)
        try:
            await self._hand_over(msg, request)
        except Exception:
            log.exception("takeover request not handled")

    async def _hand_over(self, msg: Any, request: dict[str, Any]) -> None:
        status, snapshot = self.server.hand_off(
            request["client_id"], bool(request["clean_start"]), str(request["owner"])
        )
        body: dict[str, Any] = {"status": status, "session": None}
        if snapshot is not None:
            body["session"] = _snapshot_to_json(snapshot, self.server)
            self.handed_off += 1
        await msg.respond(json.dumps(body).encode())


def parse_record(value: bytes | None) -> dict[str, Any]:
    """A directory entry's record ({} if unreadable)."""
    if not value:
        return {}
    try:
        record = json.loads(value)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _snapshot_from_record(client_id: str, record: dict[str, Any]) -> SessionSnapshot | None:
    """The session a record keeps (subscriptions only), unless there is none or it expired."""
    expiry = record.get("expiry")
    if not expiry or "subscriptions" not in record:
        return None
    offline_since = record.get("offline_since")
    if offline_since is not None and time.time() > offline_since + expiry:
        return None
    return SessionSnapshot(
        client_id=client_id,
        protocol_level=int(record.get("level", 5)),
        expiry_interval=int(expiry),
        next_packet_id=1,
        subscriptions=[SubscriptionState(*s) for s in record["subscriptions"]],
    )


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
