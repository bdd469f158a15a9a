"""The device gateway and fleet provisioning inside ``lantern serve``.

The constructor builds the authenticator (certificate/password -> identity), the authorizer
(per-connection policies) and the reserved-topic router on which device services register their
``$aws/...`` handlers; :attr:`GatewayComponent.hooks` hands them to the MQTT server when it is
built, and :meth:`GatewayComponent.attach` gives the router that server (for ``to="subscribers"``
replies) and makes the revocation watcher (kicks connections of deactivated/revoked
certificates within a second). At start it runs that watcher and the sweep of certificates whose
ownership token expired unused.

HTTP: the fleet-provisioning admin routes (``/v1/claims``, ``/v1/templates``, ``/v1/things``,
``/v1/certificates``; :mod:`lantern.api.provisioning`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.provisioning import build_provisioning_router
from lantern.errors import ConfigError
from lantern.gateway.authn import GatewayAuthenticator
from lantern.gateway.authorizer import GatewayAuthorizer
from lantern.gateway.password_pool import PasswordChecker
from lantern.gateway.presence import PresenceEvents
from lantern.gateway.revocation import RevocationWatcher
from lantern.gateway.router import ReservedTopicRouter
from lantern.gateway.things import ThingNames
from lantern.gateway.throttle import AuthThrottle
from lantern.mqtt.server import MQTTServer
from lantern.provisioning.hook import PreProvisioningHook
from lantern.provisioning.service import ProvisioningService
from lantern.runtime.component import Component, Platform
from lantern.runtime.metrics import AuthCollector, PolicyCollector
from lantern.runtime.mqtt import ServerHooks
from lantern.runtime.service_metrics import ProvisioningCollector
from lantern.store.registry import RegistryStore

__all__ = ["GatewayComponent"]

log = logging.getLogger(__name__)


class GatewayComponent(Component):
    """Authentication, authorization, the reserved-topic router and the Identity API."""

    name = "gateway"

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        settings = platform.settings.provisioning
        self.settings = settings
        # The registry port every part of the gateway and provisioning reads and writes through.
        self.registry = RegistryStore(platform.db.transactions)
        self.thing_names = ThingNames(platform.db, units=self.registry)
        self.authorizer = GatewayAuthorizer(
            self.thing_names, anonymous_policy=settings.anonymous_policy is not None
        )
        self.authenticator = GatewayAuthenticator(
            platform.db,
            platform.ca,
            self.authorizer,
            anonymous_listeners=settings.anonymous_listeners,
            anonymous_policy=settings.anonymous_policy,
            thing_names=self.thing_names,
            throttle=AuthThrottle(
                window=settings.auth_failure_window_seconds,
                max_per_address=settings.auth_max_failures_per_address,
                max_per_user=settings.auth_max_failures_per_user,
                max_entries=settings.auth_throttle_max_entries,
            ),
            passwords=PasswordChecker(
                threads=settings.password_check_threads,
                max_pending=settings.password_check_queue,
            ),
            units=self.registry,
        )
        platform.metrics.register(AuthCollector(self.authenticator.stats))
        platform.metrics.register(PolicyCollector(self.authorizer))
        self.router = ReservedTopicRouter()
        self.hook = PreProvisioningHook.open(settings.hook_timeout_seconds)
        self.provisioning = ProvisioningService(
            platform.db,
            platform.ca,
            settings,
            hook=self.hook,
            on_thing=self.thing_names.add,
            units=self.registry,
        )
        self.provisioning.register(self.router)
        platform.metrics.register(ProvisioningCollector(self.provisioning))
        self.hooks = ServerHooks(self.authenticator, self.authorizer, self.router)
        self.watcher: RevocationWatcher | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def attach(self, server: MQTTServer) -> None:
        """Reply through ``server`` and kick its connections whose certificate is revoked."""
        self.router.attach(server)
        if "presence" in self.platform.settings.aws.events:  # off by default: no hook at all
            server.events = PresenceEvents(server.publish)
        self.watcher = RevocationWatcher(
            self.platform.db,
            server,
            interval=self.settings.revocation_poll_seconds,
            units=self.registry,
        )

    def routers(self) -> Sequence[APIRouter]:
        return (
            build_provisioning_router(
                self.platform.db,
                self.platform.ca,
                admin_token=self.platform.admin_token,
                auth_failures=self.platform.auth_failures,
            ),
        )

    async def _check_anonymous_policy(self) -> None:
        name = self.settings.anonymous_policy
        if name is None:
            return
        policy = await self.registry.read(lambda uow: uow.policy(name))
        if policy is None:
            raise ConfigError(
                f"provisioning.anonymous_policy: there is no policy {name!r}; create it with "
                f"`lantern policies put {name} -f policy.json`, or unset the setting"
            )
        if not self.settings.anonymous_listeners:
            log.warning(
                "provisioning.anonymous_policy is set but no listener allows anonymous clients "
                "(provisioning.anonymous_listeners): it has no effect"
            )

    async def start(self) -> None:
        await self._check_anonymous_policy()
        # Before anonymous or password clients are admitted (the authenticator waits for it too).
        await self.thing_names.ensure_loaded()
        self.thing_names.start(self.settings.revocation_poll_seconds)
        if self.watcher is None:
            raise RuntimeError("GatewayComponent.attach(server) must be called before start()")
        self.watcher.start()
        access = (
            f"what policy {self.settings.anonymous_policy} allows"
            if self.settings.anonymous_policy
            else "publish and subscribe to any topic but devices' and $aws/..."
        )
        for listener in self.settings.anonymous_listeners:
            log.warning(
                "ANONYMOUS ACCESS IS ENABLED on the %s MQTT listener: anyone who can reach it "
                "can %s without credentials (development only)",
                listener,
                access,
            )
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        self.provisioning.start()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.provisioning.sweep()
            except Exception:
                log.exception("sweep of unregistered certificates failed; retrying")
            await asyncio.sleep(self.settings.sweep_interval_seconds)

    async def stop(self) -> None:
        await self.thing_names.stop()
        if self.watcher is not None:
            await self.watcher.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.provisioning.close()
        self.authenticator.close()
        await self.hook.close()

    def describe(self) -> list[str]:
        lines = [
            "provisioning     template DefaultProvisioningTemplate; create a claim with "
            "`lantern claims create --template DefaultProvisioningTemplate --out ./claim`",
            f"provisioning API {self.platform.http_base_url}/v1/claims, /v1/templates, "
            "/v1/things, /v1/certificates (admin token)",
        ]
        for listener in self.settings.anonymous_listeners:
            lines.append(
                f"!!! WARNING      anonymous MQTT access is ENABLED on the {listener} listener "
                "(development only; anyone can connect)"
            )
        return lines
