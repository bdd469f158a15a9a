"""Push API keys (admins change them; others see the list): create and rotate show the new
secret once; revoke. Through :class:`lantern.push.keys.KeyService` as ``lantern keys`` does
(audited as ``apikey.create``, ``apikey.rotate``, ``apikey.revoke``); the console's keys are
marked with source ``console``."""

from __future__ import annotations

import time

from starlette.responses import Response

from lantern.console.auth import Page
from lantern.console.deps import ConsoleDeps
from lantern.console.render import render
from lantern.console.routes import Routes
from lantern.errors import ConfigError, InvalidRequest
from lantern.push.keys import KeyService
from lantern.push.queries import PushQueries
from lantern.push.scopes import SCOPES, parse_scope

__all__ = ["add_routes"]


def add_routes(routes: Routes, deps: ConsoleDeps) -> None:
    push = PushQueries(deps.db)

    def service() -> KeyService:
        if deps.api_keys is None:
            raise ConfigError("the push gateway is not part of this server")
        return deps.api_keys

    async def keys_page(
        page: Page, flash: str = "", secret: str = "", key_id: str = ""
    ) -> Response:
        now = time.time()
        context = page.base(
            "keys",
            keys=[(k, k.active_at(now)) for k in reversed(await push.api_keys())],
            scopes=SCOPES,
            flash=flash,
            secret=secret,
            secret_key=key_id,
        )
        return render("keys.html", context, headers={"HX-Push-Url": "/console/keys"})

    @routes.get("/console/keys")
    async def keys(page: Page) -> Response:
        return await keys_page(page)

    @routes.post("/console/keys", needs="admin")
    async def create(page: Page) -> Response:
        try:
            scope = parse_scope(page.field("scope"))
        except ValueError as exc:
            raise InvalidRequest(f"scope: {exc}") from None
        rate = page.field("rate_per_minute")
        if rate and not rate.isdigit():
            raise InvalidRequest("rate per minute: a whole number, or empty for no limit")
        key, secret = await service().create(
            page.field("name"),
            scope,
            rate_per_minute=int(rate) if rate else None,
            source="console",
        )
        return await keys_page(page, f"Key {key.id} created.", secret, key.id)

    @routes.post("/console/keys/{key_id}/rotate", needs="admin")
    async def rotate(page: Page) -> Response:
        grace = page.field("grace_seconds")
        if grace and not grace.isdigit():
            raise InvalidRequest("grace: a whole number of seconds")
        old = page.request.path_params["key_id"]
        key, secret = await service().rotate(old, grace_seconds=float(grace or 0))
        done = f"Key {old} rotated: the new key is {key.id}"
        done += f"; the old one stops working in {grace} s." if grace and grace != "0" else "."
        return await keys_page(page, done, secret, key.id)

    @routes.post("/console/keys/{key_id}/revoke", needs="admin")
    async def revoke(page: Page) -> Response:
        key_id = page.request.path_params["key_id"]
        await service().revoke(key_id, "revoked in the console")
        return await keys_page(page, f"Key {key_id} revoked.")
