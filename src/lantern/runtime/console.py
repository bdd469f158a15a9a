"""The web console inside ``lantern serve`` (``[console] enabled``): its routes, built with the
services the other components own (jobs, push keys) and the MQTT server's live figures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from fastapi import APIRouter

from lantern.console import ConsoleDeps, build_console_router
from lantern.mqtt.server import MQTTServer
from lantern.operators import SessionStore
from lantern.push.keys import KeyService
from lantern.runtime.component import Component, Platform
from lantern.runtime.jobs import JobsComponent

__all__ = ["ConsoleComponent"]

SAMPLE_SECONDS = 5.0  # how often "last seen" notes the connected things


class _ServerStats:
    """The console's :class:`~lantern.console.LiveStats` read from the MQTT server.

    "Last seen" is sampled: :meth:`sample` (every few seconds while the server runs) notes the
    time for every connected thing, in memory; it starts empty at each start."""

    def __init__(self, server: MQTTServer, platform: Platform) -> None:
        self.server = server
        self.platform = platform
        self._seen: dict[str, float] = {}

    def connected_things(self) -> set[str]:
        names = (getattr(c.identity, "thing_name", None) for c in self.server.clients())
        return {n for n in names if isinstance(n, str)}

    def sample(self) -> None:
        now = time.time()
        for name in self.connected_things():
            self._seen[name] = now

    def last_seen(self) -> dict[str, float]:
        self.sample()
        return dict(self._seen)

    def connections(self) -> int:
        return len(self.server.handlers)

    def messages_received(self) -> int | None:
        """PUBLISH packets received, from the metrics registry when the server counts them."""
        for name in ("lantern_mqtt_packets_received", "lantern_mqtt_packets_in"):
            total = self.platform.metrics.get_sample_value(f"{name}_total", {"type": "PUBLISH"})
            if total is None:
                total = self.platform.metrics.get_sample_value(f"{name}_total", {"type": "publish"})
            if total is not None:
                return int(total)
        return None


class ConsoleComponent(Component):
    name = "console"

    def __init__(
        self, platform: Platform, server: MQTTServer, jobs: JobsComponent, keys: KeyService
    ) -> None:
        super().__init__(platform)
        settings = platform.settings.console
        self.stats = _ServerStats(server, platform)
        self._sampler: asyncio.Task[None] | None = None
        self.sessions = SessionStore(platform.db, settings.idle_timeout_seconds)
        self.deps = ConsoleDeps(
            db=platform.db,
            ca=platform.ca,
            objects=platform.objects,
            sessions=self.sessions,
            admin_token=platform.admin_token,
            live=self.stats,
            catalog=jobs.catalog,
            deployments=jobs.deployments,
            jobs=jobs.queries,
            jobs_changed=jobs.timer.tick,
            api_keys=keys,
            auth_failures=platform.auth_failures,
            https_public_url=(platform.settings.http.public_url or "").startswith("https://"),
        )

    def routers(self) -> Sequence[APIRouter]:
        if not self.platform.settings.console.enabled:
            return ()
        return (build_console_router(self.deps),)

    async def start(self) -> None:
        if self.platform.settings.console.enabled:
            self._sampler = asyncio.create_task(self._sample(), name="console-last-seen")

    async def _sample(self) -> None:
        while True:
            self.stats.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler

    def describe(self) -> list[str]:
        if not self.platform.settings.console.enabled:
            return ["console          off ([console] enabled = false)"]
        return [
            f"console          {self.platform.http_base_url}/console (admin token or "
            "`lantern operators create NAME --role R`)"
        ]
