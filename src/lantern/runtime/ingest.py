"""The ingest component: observation group commit, upload links, FHIR API, FHIR forwarding.

Registers ``$aws/rules/FHIRIngest`` and ``$aws/rules/CreateFileUploadLink`` on the gateway's
router (``platform.extras["gateway.router"]``), serves ``/fhir`` and ``/files``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.fhir import build_fhir_router
from lantern.api.files import build_files_router
from lantern.gateway.router import ReservedTopicRouter
from lantern.ingest.files import CREATE_LINK_TOPIC, FileLinkService
from lantern.ingest.forwarder import FhirForwarder
from lantern.ingest.observations import FHIR_INGEST_TOPIC, ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.runtime.audit import auth_failures
from lantern.runtime.component import Component, Platform
from lantern.runtime.datadir import DataDir
from lantern.store.ingest import open_observation_sink
from lantern.store.objects import LocalObjectStore, ObjectStore, S3Config, S3ObjectStore
from lantern.store.signing import UrlSigner, load_or_create_signing_key

log = logging.getLogger(__name__)

ROUTER_EXTRA = "gateway.router"
RECONCILE_SECONDS = 5.0


class IngestComponent(Component):
    name = "ingest"

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        cfg = platform.settings.ingest
        self.forwarder: FhirForwarder | None = None
        if cfg.fhir_forward_url:
            token = cfg.fhir_forward_token.get_secret_value() if cfg.fhir_forward_token else None
            self.forwarder = FhirForwarder(
                platform.db,
                base_url=cfg.fhir_forward_url,
                token=token,
                max_attempts=cfg.fhir_forward_max_attempts,
                retry_seconds=cfg.fhir_forward_retry_seconds,
            )
        self.writer = GroupCommitWriter(
            open_observation_sink(platform.db, writer=cfg.sqlite_writer),
            batch_max=cfg.batch_max,
            outbox=self.forwarder is not None,
            on_commit=self.forwarder.poke if self.forwarder else None,
        )
        self.observations = ObservationService(
            self.writer, max_payload_bytes=cfg.max_observation_bytes
        )
        self.s3: S3ObjectStore | None = None
        store: ObjectStore
        if cfg.storage_backend == "s3":
            assert cfg.s3_bucket is not None
            secret = cfg.s3_secret_access_key
            self.s3 = S3ObjectStore(
                S3Config(
                    bucket=cfg.s3_bucket,
                    region=cfg.s3_region,
                    endpoint_url=cfg.s3_endpoint_url,
                    access_key_id=cfg.s3_access_key_id,
                    secret_access_key=secret.get_secret_value() if secret else None,
                    prefix=cfg.s3_prefix,
                )
            )
            store = self.s3
        else:
            store = LocalObjectStore(DataDir(platform.data_dir).files_dir)
        self.files = FileLinkService(
            platform.db,
            store,
            UrlSigner(load_or_create_signing_key(platform.data_dir)),
            base_url=lambda: self.platform.http_base_url,
            backend=cfg.storage_backend,
            s3_direct=cfg.s3_direct_upload,
            ttl_seconds=cfg.upload_link_ttl_seconds,
            max_upload_bytes=cfg.max_upload_bytes,
        )
        self._reconciler: asyncio.Task[None] | None = None
        self._registered = False
        # Register now when the gateway component was built first (routes exist before the MQTT
        # server accepts anything); otherwise at start.
        self._register_routes()

    def _register_routes(self) -> None:
        router = self.platform.extras.get(ROUTER_EXTRA)
        if not self._registered and isinstance(router, ReservedTopicRouter):
            router.route(FHIR_INGEST_TOPIC, self.observations.handle)
            router.route(CREATE_LINK_TOPIC, self.files.handle)
            self._registered = True

    def routers(self) -> Sequence[APIRouter]:
        data = DataDir(self.platform.data_dir)
        return (
            build_fhir_router(
                self.platform.db,
                admin_token=data.admin_token,
                public_url=lambda: self.platform.settings.http.public_url,
            ),
            build_files_router(
                self.files,
                admin_token=data.admin_token,
                auth_failures=auth_failures(self.platform),
            ),
        )

    async def start(self) -> None:
        if self.s3 is not None:
            await self.s3.start()
        await self.writer.start()
        if self.forwarder is not None:
            await self.forwarder.start()
        if self.s3 is not None and self.platform.settings.ingest.s3_direct_upload:
            self._reconciler = asyncio.create_task(self._reconcile_loop(), name="s3-reconcile")
        self._register_routes()
        if not self._registered:
            log.warning(
                "no gateway router: %s and %s are not served", FHIR_INGEST_TOPIC, CREATE_LINK_TOPIC
            )

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.files.reconcile_s3()
            except Exception as exc:
                log.error("settling S3 uploads failed: %s", type(exc).__name__)
            await asyncio.sleep(RECONCILE_SECONDS)

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self.writer.stop()
        if self.forwarder is not None:
            await self.forwarder.stop()
        if self.s3 is not None:
            await self.s3.close()

    def describe(self) -> list[str]:
        cfg = self.platform.settings.ingest
        base = self.platform.http_base_url
        lines = [
            f"FHIR API         {base}/fhir  (admin token or `lantern tokens create`)",
            f"file uploads     {cfg.storage_backend}"
            + (f" bucket {cfg.s3_bucket}" if cfg.storage_backend == "s3" else ""),
        ]
        if self._registered:
            lines.append(f"device topics    {FHIR_INGEST_TOPIC}, {CREATE_LINK_TOPIC}")
        if cfg.fhir_forward_url:
            lines.append(f"FHIR forwarding  {cfg.fhir_forward_url}")
        return lines
