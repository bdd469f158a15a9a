"""Sessions left by a dead node: their wills are published and their expiry kept by a survivor.

A node's sessions live in its memory; their records in the session directory
(:mod:`lantern.cluster.sessions`) say which node process holds each client id and keep, besides
a persistent session's subscriptions, the will of its connection (or of the offline session
still waiting for its Will Delay). :class:`OrphanSweeper` is a singleton duty
(:mod:`lantern.cluster.singleton`): exactly one node of the cluster runs it. It watches the
directory and, every :data:`SWEEP_SECONDS`, asks each node process that holds records whether it
is alive. A node process is **dead** when it does not answer on NATS (``PING_TIMEOUT``) and
its node's row in the registry is gone (stopped) or has no heartbeat for ``STALE_SECONDS``; or
when, its node's row being fresh, no one has listened for it on NATS for ``STALE_SECONDS``
(the node was restarted under the same id, or lost NATS). A process that listens but does not
answer (busy, or a version without pings during a rolling upgrade) is not dead while its
node's heartbeat goes on. For each record of a dead node process:

* a connection that died with the node ended when the death was found (``offline_since``, kept
  in the record): its will is due then (no delay, or session expiry 0) or after its Will Delay;
* a will due (or the session ending first) is published by the sweeper's node to the whole
  cluster, after the record was changed (or deleted) under optimistic concurrency: when the
  client reconnected meanwhile, its record names its new node and nothing is published;
* a session whose expiry passed is deleted (a later reconnect gets ``sessionPresent`` = 0);
  one without expiry (clean session) at once.

Records of one dead node are read once, then again only when due (a local schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js.errors import KeyNotFoundError

from lantern.cluster.registry import STALE_SECONDS, NodeStatus, list_status
from lantern.cluster.sessions import SessionDirectory, parse_record
from lantern.mqtt.broker.session import NEVER_EXPIRES
from lantern.store import Database

__all__ = ["SWEEP_SECONDS", "OrphanSweeper", "node_of"]

log = logging.getLogger("lantern.cluster")

SWEEP_SECONDS = 1.0


def node_of(origin: str) -> str:
    """The node id of a node process (``<node id>-<8 hex>``, :class:`ClusterMQTT.origin`)."""
    return origin.rsplit("-", 1)[0]


class OrphanSweeper:
    """See the module docstring. ``run`` is the duty."""

    def __init__(
        self,
        directory: SessionDirectory,
        nodes: Callable[[], Awaitable[list[NodeStatus]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._nodes = nodes
        self._clock = clock
        self._holder: dict[str, str] = {}  # key -> node process named by its record
        self._gone_since: dict[str, float] = {}  # node process -> first ping without listener
        self._dead: set[str] = set()
        self._due: list[tuple[float, str]] = []  # (when, key) of dead nodes' records
        self.wills_published = 0
        self.sessions_expired = 0

    @classmethod
    def for_database(cls, directory: SessionDirectory, db: Database) -> OrphanSweeper:
        return cls(directory, lambda: list_status(db))

    async def run(self, stop: asyncio.Event) -> None:
        watcher = await self.directory.kv.watchall()
        watching = asyncio.create_task(self._watch(watcher))
        try:
            while not stop.is_set():
                try:
                    await self.sweep()
                except Exception as exc:
                    log.warning("session sweep failed (%s: %s); retrying", type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), SWEEP_SECONDS)
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watching
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _watch(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None:
                continue  # the end of the initial values
            key = entry.key
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._holder.pop(key, None)
                continue
            holder = parse_record(entry.value).get("node")
            if not isinstance(holder, str):
                self._holder.pop(key, None)
                continue
            self._holder[key] = sys.intern(holder)  # one string per node process
            if holder in self._dead:
                heapq.heappush(self._due, (0.0, key))

    async def sweep(self) -> None:
        """One round: find node processes that died, handle their records that are due."""
        now = self._clock()
        holders = set(self._holder.values())
        newly_dead = [h for h in holders - self._dead if await self._is_dead(h, now)]
        for origin in newly_dead:
            log.warning(
                "node process %s is gone: publishing its wills and expiring its sessions", origin
            )
            self._dead.add(origin)
            for key, holder in list(self._holder.items()):
                if holder == origin:
                    heapq.heappush(self._due, (0.0, key))
        self._dead &= holders | set(newly_dead)  # forget those without records left
        while self._due and self._due[0][0] <= now:
            _, key = heapq.heappop(self._due)
            if self._holder.get(key) in self._dead:
                await self._handle(key, now)

    async def _is_dead(self, origin: str, now: float) -> bool:
        answer = await self.directory.ping(origin)
        if answer == "alive":
            self._gone_since.pop(origin, None)
            return False
        rows = {n.node_id: n for n in await self._nodes()}
        row = rows.get(node_of(origin))
        if row is None or row.state == "down":
            return True
        if answer == "silent":  # listening: alive but busy, or an older version
            self._gone_since.pop(origin, None)
            return False
        # Its node id has a live row, but no one listens for this process: the node runs again
        # as another process (restarted), or lost NATS; dead once that lasted STALE_SECONDS.
        gone_since = self._gone_since.setdefault(origin, now)
        return now - gone_since >= STALE_SECONDS

    async def _handle(self, key: str, now: float) -> None:
        kv = self.directory.kv
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return
        record = parse_record(entry.value)
        if record.get("node") not in self._dead:
            return  # the client reconnected elsewhere
        changed = False
        if record.get("offline_since") is None:  # the connection ended with its node
            record["offline_since"] = now
            changed = True
        offline_since = float(record["offline_since"])
        expiry = int(record.get("expiry") or 0)
        ends_at = float("inf") if expiry == NEVER_EXPIRES else offline_since + expiry
        will = record.get("will")
        will_at = float("inf")
        if will is not None:
            if record.get("will_due") is None:
                record["will_due"] = offline_since + int(record.get("will_delay") or 0)
                changed = True
            will_at = min(float(record["will_due"]), ends_at)
        if now >= ends_at:
            try:
                await kv.delete(key, last=entry.revision)
            except Exception:
                return  # changed meanwhile (the client is back): not ours any more
            self.sessions_expired += 1
            self._publish(key, will)
            return
        if now >= will_at:
            for field in ("will", "will_delay", "will_due"):
                record.pop(field, None)
            will_to_publish, changed = will, True
        else:
            will_to_publish = None
        if changed:
            try:
                await kv.update(key, json.dumps(record).encode(), last=entry.revision)
            except Exception:
                return  # the client is back (its new node rewrote the record)
        self._publish(key, will_to_publish)
        next_at = min(ends_at, float("inf") if will_to_publish else will_at)
        if next_at != float("inf"):
            heapq.heappush(self._due, (next_at, key))

    def _publish(self, key: str, will: str | None) -> None:
        if will is None:
            return
        try:
            self.directory.publish_will(will)
        except Exception:
            log.exception("the will of a dead node's session (%s) could not be published", key)
            return
        self.wills_published += 1
