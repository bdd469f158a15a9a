"""The jobs component: the Jobs device API on the gateway router, firmware/deployment routes and
the timer loop (rollout, timeouts, abort, completion, notifications).

Takes the gateway's router: the device API's topics are registered on it, and the timer sends
``notify``/``notify-next`` through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.firmware import build_firmware_router
from lantern.cluster.singleton import Singleton
from lantern.gateway.router import ReservedTopicRouter
from lantern.jobs.catalog import FirmwareCatalog, ThingGroups
from lantern.jobs.clock import SystemClock
from lantern.jobs.deployments import DeploymentService
from lantern.jobs.device_api import JobsDeviceAPI
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.events import JobEvents
from lantern.jobs.files import FileUrls
from lantern.jobs.generic import JobService
from lantern.jobs.queries import JobsQueries
from lantern.jobs.throttle import TokenBuckets
from lantern.jobs.timer import JobsTimer
from lantern.runtime.cluster import duty_singleton
from lantern.runtime.component import Component, Platform
from lantern.runtime.service_metrics import JobsCollector
from lantern.store.signing import UrlSigner, load_or_create_signing_key

log = logging.getLogger(__name__)


class JobsComponent(Component):
    name = "jobs"

    def __init__(self, platform: Platform, router: ReservedTopicRouter) -> None:
        super().__init__(platform)
        cfg = platform.settings.jobs
        self.clock = SystemClock()
        self.signer = UrlSigner(load_or_create_signing_key(platform.data_dir))
        self.renderer = DocumentRenderer(
            self.signer,
            lambda: self.platform.http_base_url,
            cfg.firmware_url_ttl_seconds,
            self.clock,
        )
        self.catalog = FirmwareCatalog(
            platform.db, platform.objects, self.clock, cfg.max_firmware_bytes
        )
        self.groups = ThingGroups(platform.db, self.clock)
        self.deployments = DeploymentService(platform.db, self.clock)
        ingest = platform.settings.ingest
        bucket = ingest.s3_bucket if ingest.storage_backend == "s3" else None
        self.jobs = JobService(platform.db, self.clock, platform.objects, FileUrls(bucket))
        self.queries = JobsQueries(platform.db)
        limiter = TokenBuckets(cfg.device_requests_per_second, cfg.device_request_burst, self.clock)
        self.device_api = JobsDeviceAPI(platform.db, self.renderer, self.clock, limiter)
        self.device_api.register(router)
        self.timer = JobsTimer(platform.db, self.renderer, self.clock, router)
        aws = platform.settings.aws
        if "jobs" in aws.events:  # off by default: no publisher at all
            events = JobEvents(router, aws.account_id, aws.events_region)
            self.device_api.events = events
            self.timer.events = events
            self.jobs.events = events
        platform.metrics.register(JobsCollector(self.device_api, self.timer))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # In a cluster the timer (rollout, timeouts, abort) runs on one node at a time.
        interval = cfg.timer_tick_seconds
        self._singleton: Singleton | None = duty_singleton(
            platform, "jobs-timer", lambda stop: self.timer.run(stop, interval)
        )

    async def _on_change(self) -> None:
        """A deployment changed through this node's API: the node running the timer ticks at
        once; another node only publishes the notifications already due (the timer's node
        releases the rollout within its tick)."""
        if self._singleton is None or self._singleton.held:
            await self.timer.tick()
        else:
            await self.timer.flush()

    def routers(self) -> Sequence[APIRouter]:
        return (
            build_firmware_router(
                self.catalog,
                self.deployments,
                self.queries,
                self.signer,
                self.clock,
                admin_token=self.platform.admin_token,
                on_change=self._on_change,
                auth_failures=self.platform.auth_failures,
            ),
        )

    async def start(self) -> None:
        if self._singleton is not None:
            await self._singleton.start()
            return
        self._stop.clear()
        interval = self.platform.settings.jobs.timer_tick_seconds
        self._task = asyncio.create_task(self.timer.run(self._stop, interval), name="jobs-timer")

    async def stop(self) -> None:
        if self._singleton is not None:
            await self._singleton.stop()
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.device_api.close()

    def describe(self) -> list[str]:
        base = self.platform.http_base_url
        return [
            f"firmware         {base}/v1/firmware, {base}/v1/deployments (admin token); "
            "`lantern firmware upload FILE --version V`",
        ]
