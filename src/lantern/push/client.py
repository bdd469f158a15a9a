"""A small client for research servers sending through a Lantern app gateway.

    from lantern.push.client import PushClient
    with PushClient("https://gateway.example.org", api_key) as client:
        delivery_id = client.send("apns:<hex token>", {"aps": {"alert": "Time for your check-in"}})

Failures raise :class:`PushFailed` with the gateway's ``code`` (``dead_token``: drop the
token; ``rate_limited``/``provider_failed``: retry after ``retry_after`` seconds).
:class:`AsyncPushClient` is the asyncio twin. The API key travels in the Authorization header.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from lantern import jsonlimits
from lantern.errors import LanternError


class PushFailed(LanternError):
    """The gateway refused or could not deliver the notification."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" ({reason})" if reason else ""))
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.field = field
        self.retry_after = retry_after

    @property
    def dead_token(self) -> bool:
        return self.code == "dead_token"


def _result(response: httpx.Response) -> str:
    try:
        body = jsonlimits.loads(response.content)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 200 and isinstance(body.get("id"), str):
        return str(body["id"])
    header = response.headers.get("retry-after")
    raise PushFailed(
        response.status_code,
        str(body.get("code", "http_error")),
        str(body.get("error", response.reason_phrase)),
        reason=body.get("reason"),
        field=body.get("field"),
        retry_after=float(header) if header and header.isdigit() else None,
    )


def _request(api_key: str, device_token: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "headers": {"authorization": f"Bearer {api_key}"},
        "json": {"device_token": device_token, "payload": dict(payload)},
    }


class PushClient:
    """Blocking client; keeps one connection pool. ``ca_file`` trusts a private CA."""

    def __init__(
        self, url: str, api_key: str, *, timeout: float = 30.0, ca_file: Path | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._api_key = api_key
        verify: Any = str(ca_file) if ca_file else True
        self._http = httpx.Client(timeout=timeout, verify=verify)

    def send(self, device_token: str, payload: Mapping[str, Any]) -> str:
        """Send one notification; returns the delivery id or raises :class:`PushFailed`."""
        response = self._http.post(
            f"{self.url}/push", **_request(self._api_key, device_token, payload)
        )
        return _result(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PushClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPushClient:
    """asyncio client; keeps one connection pool."""

    def __init__(
        self, url: str, api_key: str, *, timeout: float = 30.0, ca_file: Path | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._api_key = api_key
        verify: Any = str(ca_file) if ca_file else True
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify)

    async def send(self, device_token: str, payload: Mapping[str, Any]) -> str:
        response = await self._http.post(
            f"{self.url}/push", **_request(self._api_key, device_token, payload)
        )
        return _result(response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPushClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
