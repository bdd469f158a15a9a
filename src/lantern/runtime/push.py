"""The app gateway inside ``lantern serve``: ``/push``, ``/metrics``, key import, draining stop.

The constructor builds the dispatcher and the key service (the scheduler sends through them).
At start, seed-style keys in ``API_KEYS`` (comma-separated) are imported with the scope in
``API_KEYS_SCOPE`` (default ``external``); keys an earlier import added and that are no longer
listed are revoked, which is how the seed's operators revoke a key.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter

from lantern.api.app import ReadinessCheck
from lantern.api.push import push_router
from lantern.audit import Actor, acting_as
from lantern.errors import ConfigError
from lantern.push.deliverylog import DeliveryLog
from lantern.push.dispatch import PushDispatcher
from lantern.push.factory import build_providers
from lantern.push.keys import KeyService
from lantern.push.metrics import PushMetrics
from lantern.push.retry import RetryPolicy
from lantern.push.scopes import parse_scope
from lantern.runtime.component import Component, Platform
from lantern.store.push import DeliveryStore

log = logging.getLogger(__name__)

ADDRESS_KEY_FILE = "push-address.key"


def address_key(data_dir: Path) -> bytes:
    """The secret that keys the delivery log's address hashes (created once, mode 0600)."""
    path = data_dir / ADDRESS_KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


class PushComponent(Component):
    """Runs the app gateway."""

    name = "push"

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform)
        settings = platform.settings.push
        self.settings = settings
        self.keys = KeyService(platform.db, cache_seconds=settings.key_cache_seconds)
        self.dispatcher = PushDispatcher(
            build_providers(settings),
            DeliveryLog(DeliveryStore(platform.db)),
            address_key=address_key(platform.data_dir),
            retry=RetryPolicy(budget=settings.retry_budget_seconds),
            default_rate_per_minute=settings.default_rate_per_minute,
            metrics=PushMetrics(platform.metrics),
        )

    def routers(self) -> Sequence[APIRouter]:
        metrics_token = self.platform.settings.http.metrics_token
        return [
            push_router(
                self.dispatcher,
                self.keys,
                max_request_bytes=self.settings.max_request_bytes,
                metrics_token=metrics_token.get_secret_value() if metrics_token else None,
            )
        ]

    def readiness_checks(self) -> Sequence[ReadinessCheck]:
        async def providers_ready() -> dict[str, str]:
            problems: dict[str, str] = {}
            for scheme, provider in self.dispatcher.providers.items():
                problem = await provider.check_ready()
                if problem is not None:
                    problems[f"push.{scheme}"] = problem
            return problems

        return [providers_ready]

    async def start(self) -> None:
        listed = os.environ.get("API_KEYS")
        if listed is not None:
            try:
                scope = parse_scope(os.environ.get("API_KEYS_SCOPE", "external"))
            except ValueError as exc:
                raise ConfigError(f"API_KEYS_SCOPE: {exc}") from None
            with acting_as(Actor("config")):  # recorded in the audit log as from settings
                added, revoked = await self.keys.import_env(listed.split(","), scope)
            log.info("API_KEYS: %d key(s) added, %d revoked", added, revoked)
        await self.dispatcher.start()

    async def stop(self) -> None:
        await self.dispatcher.close(self.settings.drain_seconds)

    def describe(self) -> list[str]:
        configured = ", ".join(sorted(self.dispatcher.providers)) or "none configured"
        return [
            f"push             POST {self.platform.http_base_url}/push  (providers: {configured})",
            f"metrics          {self.platform.http_base_url}/metrics"
            + (
                "  (bearer token: http.metrics_token)"
                if self.platform.settings.http.metrics_token
                else ""
            ),
        ]
