"""The jobs component: the Jobs device API on the gateway router, firmware/deployment routes and
the timer loop (rollout, timeouts, abort, completion, notifications).

Must come after the gateway component (it reads ``platform.extras["gateway.router"]``, which also
carries ``notify``/``notify-next`` to subscribers once the MQTT server is attached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter

from lantern.api.firmware import build_firmware_router
from lantern.gateway.router import ReservedTopicRouter
from lantern.jobs.catalog import FirmwareCatalog, ThingGroups
from lantern.jobs.clock import SystemClock
from lantern.jobs.deployments import DeploymentService
from lantern.jobs.device_api import JobsDeviceAPI
from lantern.jobs.documents import DocumentRenderer
from lantern.jobs.queries import JobsQueries
from lantern.jobs.throttle import TokenBuckets
from lantern.jobs.timer import JobsTimer
from lantern.runtime.audit import auth_failures
from lantern.runtime.component import Component, Platform
from lantern.runtime.datadir import DataDir
from lantern.settings import Settings
from lantern.store.objects import LocalObjectStore, ObjectStore, S3Config, S3ObjectStore
from lantern.store.signing import UrlSigner, load_or_create_signing_key

log = logging.getLogger(__name__)

ROUTER_EXTRA = "gateway.router"


def object_store_for(
    settings: Settings, data_dir: Path
) -> tuple[ObjectStore, S3ObjectStore | None]:
    """The configured object store (``[ingest] storage_backend``); the S3 one needs start()."""
    cfg = settings.ingest
    if cfg.storage_backend == "s3":
        assert cfg.s3_bucket is not None
        secret = cfg.s3_secret_access_key
        s3 = S3ObjectStore(
            S3Config(
                bucket=cfg.s3_bucket,
                region=cfg.s3_region,
                endpoint_url=cfg.s3_endpoint_url,
                access_key_id=cfg.s3_access_key_id,
                secret_access_key=secret.get_secret_value() if secret else None,
                prefix=cfg.s3_prefix,
            )
        )
        return s3, s3
    return LocalObjectStore(DataDir(data_dir).files_dir), None


class JobsComponent(Component):
    name = "jobs"

    def __init__(self, platform: Platform) -> None:
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
        self.objects, self.s3 = object_store_for(platform.settings, platform.data_dir)
        self.catalog = FirmwareCatalog(
            platform.db, self.objects, self.clock, cfg.max_firmware_bytes
        )
        self.groups = ThingGroups(platform.db, self.clock)
        self.deployments = DeploymentService(platform.db, self.clock)
        self.queries = JobsQueries(platform.db)
        limiter = TokenBuckets(cfg.device_requests_per_second, cfg.device_request_burst, self.clock)
        self.device_api = JobsDeviceAPI(platform.db, self.renderer, self.clock, limiter)
        self.router: ReservedTopicRouter | None = None
        self.timer = JobsTimer(platform.db, self.renderer, self.clock, None)
        # Register now when the gateway component was built first, else at start.
        self._register_routes()
        platform.extras["jobs.timer"] = self.timer
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _register_routes(self) -> None:
        router = self.platform.extras.get(ROUTER_EXTRA)
        if self.router is None and isinstance(router, ReservedTopicRouter):
            self.device_api.register(router)
            self.router = router
            self.timer.notifier = router

    def routers(self) -> Sequence[APIRouter]:
        data = DataDir(self.platform.data_dir)
        return (
            build_firmware_router(
                self.catalog,
                self.deployments,
                self.queries,
                self.signer,
                self.clock,
                admin_token=data.admin_token,
                on_change=self.timer.tick,
                auth_failures=auth_failures(self.platform),
            ),
        )

    async def start(self) -> None:
        if self.s3 is not None:
            await self.s3.start()
        self._register_routes()
        if self.router is None:
            log.warning("no gateway router: the Jobs device API ($aws/things/+/jobs/...) is off")
        self._stop.clear()
        interval = self.platform.settings.jobs.timer_tick_seconds
        self._task = asyncio.create_task(self.timer.run(self._stop, interval), name="jobs-timer")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.device_api.close()
        if self.s3 is not None:
            await self.s3.close()

    def describe(self) -> list[str]:
        base = self.platform.http_base_url
        return [
            f"firmware         {base}/v1/firmware, {base}/v1/deployments (admin token); "
            "`lantern firmware upload FILE --version V`",
        ]
