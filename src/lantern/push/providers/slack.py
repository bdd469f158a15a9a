"""Slack incoming webhooks: ``slack:T…/B…/<secret>`` receives ``{"text": ...}``.

Slack answers 200 ``ok``; 400 is a malformed message; 403/404/410 mean the webhook is gone
(``invalid_token``, ``no_service``, ``channel_is_archived``): reported as a dead token so the
caller drops it; 429 carries Retry-After (about one message per second per webhook).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from lantern.push.errors import PayloadTooLarge, PushRequestInvalid
from lantern.push.providers.base import (
    CallerError,
    DeadToken,
    PermanentFailure,
    PreparedMessage,
    PushProvider,
    TemporaryFailure,
)
from lantern.push.providers.http import make_client, retry_after, transport_failure
from lantern.settings.push import SlackSettings

_PATH_RE = re.compile(r"^T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+$")
MAX_CHARS = 40_000


class SlackProvider(PushProvider):
    """``slack:`` destinations."""

    scheme = "slack"
    name = "slack"

    def __init__(self, settings: SlackSettings, *, timeout: float = 5.0) -> None:
        super().__init__(max_in_flight=20)
        self.base_url = settings.base_url.rstrip("/")
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        if not _PATH_RE.match(address):
            raise PushRequestInvalid(
                "device_token", "a Slack destination is slack:T…/B…/<secret> (the webhook path)"
            )
        extra = set(payload) - {"content", "text"}
        if extra:
            raise PushRequestInvalid(f"payload.{sorted(extra)[0]}", "not allowed: use content")
        text = payload.get("content", payload.get("text"))
        field = "payload.content" if "content" in payload else "payload.text"
        if not isinstance(text, str) or not text:
            raise PushRequestInvalid(field, "must be a non-empty string")
        if len(text) > MAX_CHARS:
            raise PayloadTooLarge(field, f"Slack messages are limited to {MAX_CHARS} characters")
        raw = json.dumps({"text": text}).encode()
        return PreparedMessage(address=address, body={"_raw": raw}, headers={})

    async def send(self, message: PreparedMessage) -> None:
        if self._client is None:
            self._client = make_client(http2=False, ca_file=None, timeout=self._timeout)
        try:
            response = await self._client.post(
                f"{self.base_url}/{message.address}",
                content=message.body["_raw"],
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        if response.status_code == 200:
            return
        reason = response.text.strip()[:64] or f"HTTP{response.status_code}"
        if response.status_code == 429:
            raise TemporaryFailure(reason, retry_after=retry_after(response.headers))
        if response.status_code >= 500:
            raise TemporaryFailure(reason, retry_after=retry_after(response.headers))
        if response.status_code in (403, 404, 410):
            raise DeadToken(reason)
        if response.status_code == 400:
            raise CallerError(reason)
        raise PermanentFailure(reason)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
