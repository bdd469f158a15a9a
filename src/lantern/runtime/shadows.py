"""The shadows component: the Device Shadow MQTT API on the gateway router and the iot-data
shadow HTTP routes, over one group-committed :class:`~lantern.shadows.service.ShadowService`.

Takes the gateway's router: the shadow topics are registered on it, and the broadcasts
(``update/delta``, ``update/documents``, ``delete/accepted``) of HTTP changes go through it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.shadows import build_shadows_router
from lantern.gateway.router import ReservedTopicRouter
from lantern.iam.verifier import SignatureVerifier
from lantern.runtime.component import Component, Platform
from lantern.shadows.device_api import ShadowDeviceAPI
from lantern.shadows.service import ShadowService
from lantern.store.shadows import ShadowsStore


class ShadowsComponent(Component):
    name = "shadows"

    def __init__(
        self,
        platform: Platform,
        router: ReservedTopicRouter,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        super().__init__(platform)
        self.verifier = verifier
        # A SQLite file's writer thread commits batches in order: hand it the next one while
        # one commits (the next starts right after the COMMIT).
        pipeline = 2 if platform.db.sqlite_path is not None else 1
        self.service = ShadowService(
            ShadowsStore(platform.db.transactions), router, pipeline=pipeline
        )
        self.device_api = ShadowDeviceAPI(self.service)
        self.device_api.register(router)

    def routers(self) -> Sequence[APIRouter]:
        return (
            build_shadows_router(
                self.service,
                admin_token=self.platform.admin_token,
                auth_failures=self.platform.auth_failures,
                verifier=self.verifier,
            ),
        )

    async def stop(self) -> None:
        await self.service.close()

    def describe(self) -> list[str]:
        base = self.platform.http_base_url
        return [
            f"shadows          $aws/things/<thing>/shadow/...; {base}/things/<thing>/shadow "
            "(admin token or access key); `lantern shadows get THING`",
        ]
