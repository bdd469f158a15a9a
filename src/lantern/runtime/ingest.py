"""The ingest component: observation group commit, upload links, FHIR API, FHIR forwarding.

Registers ``$aws/rules/FHIRIngest`` and ``$aws/rules/CreateFileUploadLink`` on the gateway's
router (before the MQTT server accepts anything), serves ``/fhir`` and ``/files``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.fhir import build_fhir_router
from lantern.api.files import build_files_router
from lantern.cluster.singleton import Singleton
from lantern.gateway.router import ReservedTopicRouter
from lantern.ingest.files import CREATE_LINK_TOPIC, FileLinkService
from lantern.ingest.forwarder import MAX_BACKOFF, FhirForwarder
from lantern.ingest.observations import FHIR_INGEST_TOPIC, ObservationService
from lantern.ingest.writer import GroupCommitWriter
from lantern.runtime.cluster import duty_singleton
from lantern.runtime.component import Component, Platform
from lantern.runtime.service_metrics import IngestCollector
from lantern.store.ingest import open_observation_sink
from lantern.store.objects import S3ObjectStore
from lantern.store.signing import UrlSigner, load_or_create_signing_key

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 5.0
CLUSTER_FORWARD_POLL_SECONDS = 1.0  # how often the forwarding node looks for rows of other nodes


class IngestComponent(Component):
    name = "ingest"

    def __init__(self, platform: Platform, router: ReservedTopicRouter) -> None:
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
                # Rows other nodes commit do not poke this node: it looks every second.
                idle_seconds=CLUSTER_FORWARD_POLL_SECONDS if platform.cluster else MAX_BACKOFF,
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
        self.files = FileLinkService(
            platform.db,
            platform.objects,
            UrlSigner(load_or_create_signing_key(platform.data_dir)),
            base_url=lambda: self.platform.http_base_url,
            backend=cfg.storage_backend,
            s3_direct=cfg.s3_direct_upload,
            ttl_seconds=cfg.upload_link_ttl_seconds,
            max_upload_bytes=cfg.max_upload_bytes,
        )
        self._reconciler: asyncio.Task[None] | None = None
        platform.metrics.register(IngestCollector(self.observations, self.files))
        # In a cluster the outbox is forwarded by one node at a time.
        forwarder = self.forwarder
        self._forwarding: Singleton | None = (
            None
            if forwarder is None
            else duty_singleton(platform, "fhir-forwarder", forwarder.run_until)
        )
        router.route(FHIR_INGEST_TOPIC, self.observations.handle)
        router.route(CREATE_LINK_TOPIC, self.files.handle)

    def routers(self) -> Sequence[APIRouter]:
        return (
            build_fhir_router(
                self.platform.db,
                admin_token=self.platform.admin_token,
                public_url=lambda: self.platform.settings.http.public_url,
            ),
            build_files_router(
                self.files,
                admin_token=self.platform.admin_token,
                auth_failures=self.platform.auth_failures,
            ),
        )

    async def start(self) -> None:
        await self.writer.start()
        if self._forwarding is not None:
            await self._forwarding.start()
        elif self.forwarder is not None:
            await self.forwarder.start()
        direct = self.platform.settings.ingest.s3_direct_upload
        if direct and isinstance(self.platform.objects, S3ObjectStore):
            self._reconciler = asyncio.create_task(self._reconcile_loop(), name="s3-reconcile")

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
        if self._forwarding is not None:
            await self._forwarding.stop()
        if self.forwarder is not None:
            await self.forwarder.stop()

    def describe(self) -> list[str]:
        cfg = self.platform.settings.ingest
        base = self.platform.http_base_url
        lines = [
            f"FHIR API         {base}/fhir  (admin token or `lantern tokens create`)",
            f"file uploads     {cfg.storage_backend}"
            + (f" bucket {cfg.s3_bucket}" if cfg.storage_backend == "s3" else ""),
        ]
        lines.append(f"device topics    {FHIR_INGEST_TOPIC}, {CREATE_LINK_TOPIC}")
        if cfg.fhir_forward_url:
            lines.append(f"FHIR forwarding  {cfg.fhir_forward_url}")
        return lines
