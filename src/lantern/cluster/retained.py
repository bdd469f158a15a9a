"""Retained messages cluster-wide: a JetStream key-value bucket every node mirrors.

The bucket (``lantern-<cluster>-retained``, one value per topic, no history) holds each topic's
retained message as an envelope (:mod:`lantern.cluster.envelope`); the key is the topic in
URL-safe base64. The node a retained PUBLISH arrives on stores it locally at once (as on one
node) and writes it to the bucket (an empty payload deletes the key), in the order the broker
routed them. Every node watches the bucket and applies each change, its own included, to its
local retained store, which serves new subscribers as on one node: every node ends with the
bucket's state, in the bucket's order. A node starts serving only once it has read the
bucket's current content.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from lantern.cluster.envelope import EnvelopeError, decode
from lantern.mqtt.broker import Message

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from lantern.cluster.bus import _OrderedClient
    from lantern.mqtt.server import MQTTServer

__all__ = ["RetainedSync", "topic_key"]

log = logging.getLogger("lantern.cluster")


def topic_key(topic: str) -> str:
    return base64.urlsafe_b64encode(topic.encode()).decode().rstrip("=") or "_"


def _key_topic(key: str) -> str:
    if key == "_":
        return ""
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)).decode()


class RetainedSync:
    def __init__(self, client: _OrderedClient, server: MQTTServer, bucket: str) -> None:
        self.client = client
        self.server = server
        self.bucket = bucket
        self._kv: KeyValue | None = None
        self._writes: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._watcher: Any = None
        self.applied = 0
        self.revision = 0  # the bucket's last change applied here
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def start(self) -> None:
        js = self.client.jetstream()
        self._kv = await js.create_key_value(bucket=self.bucket, history=1)
        watcher = self._watcher = await self._kv.watchall()
        loaded = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._watch(watcher, loaded)))
        self._tasks.append(loop.create_task(self._write()))
        await asyncio.wait_for(loaded, 30)

    async def stop(self) -> None:
        # Let queued writes reach the bucket (bounded), then stop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writes.join(), 5)
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def changed(self, topic: str, envelope: bytes | None) -> None:
        """A retained message set (``envelope``) or deleted (None) on this node."""
        self._writes.put_nowait((topic, envelope))

    async def _write(self) -> None:
        kv = self._kv
        assert kv is not None
        while True:
            topic, envelope = await self._writes.get()
            key = topic_key(topic)
            try:
                if envelope is None:
                    await kv.delete(key)
                else:
                    await kv.put(key, envelope)
            except Exception as exc:
                log.warning("retained message for a topic not written to the cluster: %s", exc)
            finally:
                self._writes.task_done()

    async def _watch(self, watcher: Any, loaded: asyncio.Future[None]) -> None:
        async for entry in watcher:
            if entry is None:
                if not loaded.done():
                    loaded.set_result(None)
                continue
            try:
                self._apply(entry.key, entry.value, entry.operation)
            except Exception:
                log.exception("retained message update not applied")
            self.revision = max(self.revision, entry.revision)
            if self._waiters:
                self._wake()

    async def caught_up(self) -> None:
        """Return once every change the bucket holds now is applied here (one JetStream
        request): a subscriber then gets the retained messages published before, on any
        node, before its subscription was made."""
        kv = self._kv
        assert kv is not None
        status = await kv.status()
        target = status.stream_info.state.last_seq
        if self.revision >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await asyncio.wait_for(future, 5)

    def _wake(self) -> None:
        waiting = []
        for target, future in self._waiters:
            if future.done():
                continue
            if self.revision >= target:
                future.set_result(None)
            else:
                waiting.append((target, future))
        self._waiters = waiting

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        store = self.server.broker.retained
        now = self.server.loop.time()
        topic = _key_topic(key)
        self.applied += 1
        if operation in ("DEL", "PURGE") or not value:
            store.store(Message(topic, b"", retain=True, now=now))
            return
        try:
            envelope = decode(value, now)
        except EnvelopeError as exc:
            log.warning("dropped a retained message from the cluster: %s", exc)
            return
        age = max(0.0, time.time() - envelope.published_at)
        message = decode(value, now, age=age).message if age else envelope.message
        if message.expired(now):
            store.store(Message(topic, b"", retain=True, now=now))
        else:
            store.store(message)
