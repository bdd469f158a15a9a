"""Firebase Cloud Messaging HTTP v1 with a service account.

The OAuth2 access token is minted from the service account (google-auth) and refreshed five
minutes before it expires, never a static bearer token as in the legacy gateway. Legacy
(pre-v1) payloads are translated: top-level ``priority``/``time_to_live``/``expiry``/
``collapse_key`` become ``android.*`` and ``data`` values are stringified. Errors are classified
by ``error.details[].errorCode`` (Firebase's ErrorCode reference).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2 import service_account

from lantern import jsonlimits
from lantern.push.errors import PayloadTooLarge, PushRequestInvalid
from lantern.push.providers.base import (
    CallerError,
    DeadToken,
    PermanentFailure,
    PreparedMessage,
    ProviderConfigError,
    ProviderFailure,
    PushProvider,
    TemporaryFailure,
)
from lantern.push.providers.http import make_client, retry_after, ssl_context, transport_failure
from lantern.settings.push import FCMSettings

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_REFRESH_MARGIN = dt.timedelta(minutes=5)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_:.\-]{8,4096}$")
_V1_FIELDS = frozenset({"data", "notification", "android", "webpush", "apns", "fcm_options"})
_LEGACY_FIELDS = frozenset({"priority", "time_to_live", "expiry", "collapse_key"})
_MAX_BYTES = 4096


class _HttpxTransport(google.auth.transport.Request):
    """google-auth's request interface over httpx (trusting the configured CA as well)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        try:
            response = self._client.request(
                method, url, content=body, headers=dict(headers or {}), timeout=timeout or 10.0
            )
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                type(exc).__name__
            ) from None
        return _Response(response)


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def translate(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 ``message`` (without token) from a v1 body, ``{"message": ...}`` or a legacy body.

    Raises PushRequestInvalid naming the field.
    """
    source = payload.get("message") if set(payload) == {"message"} else payload
    if not isinstance(source, Mapping):
        raise PushRequestInvalid("payload.message", "must be a JSON object")
    message: dict[str, Any] = {}
    android: dict[str, Any] = {}
    for name, value in source.items():
        if name in _V1_FIELDS:
            if not isinstance(value, Mapping):
                raise PushRequestInvalid(f"payload.{name}", "must be a JSON object")
            message[name] = dict(value)
        elif name not in _LEGACY_FIELDS:
            raise PushRequestInvalid(
                f"payload.{name}",
                "not an FCM v1 message field (data, notification, android, webpush, apns, "
                "fcm_options) nor a translated legacy one (priority, time_to_live, expiry, "
                "collapse_key)",
            )
    if "token" in message or "topic" in message:
        raise PushRequestInvalid("payload.token", "the token comes from device_token")
    if "data" in message:
        message["data"] = {str(k): _stringify(v) for k, v in message["data"].items()}
    priority = source.get("priority")
    if priority is not None:
        if not isinstance(priority, str) or priority.lower() not in ("high", "normal"):
            raise PushRequestInvalid("payload.priority", "must be 'high' or 'normal'")
        android["priority"] = priority.upper()
    ttl_seconds: float | None = None
    if "time_to_live" in source:
        ttl_seconds = _number(source["time_to_live"], "payload.time_to_live")
    if "expiry" in source:
        ttl_seconds = _number(source["expiry"], "payload.expiry") / 1000.0
    if ttl_seconds is not None:
        android["ttl"] = f"{ttl_seconds:.3f}".rstrip("0").rstrip(".") + "s"
    if "collapse_key" in source:
        if not isinstance(source["collapse_key"], str):
            raise PushRequestInvalid("payload.collapse_key", "must be a string")
        android["collapse_key"] = source["collapse_key"]
    if android:
        message["android"] = {**android, **message.get("android", {})}
    if not message:
        raise PushRequestInvalid("payload", "an FCM message needs data or notification")
    return message


def _number(value: Any, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise PushRequestInvalid(field, "must be a non-negative number")
    return float(value)


def classify(status: int, body: Any, headers: httpx.Headers) -> ProviderFailure:
    """The failure class of an FCM error response."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    code: str | None = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
            break
    status_name = str(error.get("status") or f"HTTP{status}")
    message = str(error.get("message", ""))
    delay = retry_after(headers)
    if code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
        return DeadToken(code)
    if code == "INVALID_ARGUMENT":
        if "registration token" in message.lower():
            return DeadToken("INVALID_ARGUMENT")
        return CallerError(code)
    if code == "QUOTA_EXCEEDED":
        return TemporaryFailure(code, retry_after=max(delay or 0.0, 60.0))
    if code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
        return TemporaryFailure(code or status_name, retry_after=delay)
    if code == "THIRD_PARTY_AUTH_ERROR":
        return ProviderConfigError(code)
    if status == 401:
        return TemporaryFailure("UNAUTHENTICATED")
    if status in (403, 404):
        return ProviderConfigError(code or status_name)
    if status == 429:
        return TemporaryFailure(code or status_name, retry_after=max(delay or 0.0, 60.0))
    if status == 400:
        return CallerError(code or status_name)
    return PermanentFailure(code or status_name)


class FCMProvider(PushProvider):
    """``gcm:`` (alias ``fcm:``) destinations."""

    scheme = "gcm"
    name = "fcm"

    def __init__(self, settings: FCMSettings, *, timeout: float = 5.0) -> None:
        super().__init__(max_in_flight=settings.max_concurrent_sends)
        self.settings = settings
        self._timeout = timeout
        self._credentials: service_account.Credentials | None = None
        self._project: str | None = settings.project_id
        self._client: httpx.AsyncClient | None = None
        self._token_client: httpx.Client | None = None
        self._refresh_lock = asyncio.Lock()
        self.tokens_minted = 0

    def _load(self) -> service_account.Credentials:
        if self._credentials is None:
            path = self.settings.service_account_file
            assert path is not None
            try:
                info = json.loads(path.read_text())
                if self.settings.token_uri:
                    info["token_uri"] = self.settings.token_uri
                credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=[SCOPE]
                )
            except (OSError, ValueError, KeyError) as exc:
                raise ProviderConfigError(
                    "InvalidServiceAccount", f"cannot load {path}: {type(exc).__name__}"
                ) from None
            self._project = self._project or info.get("project_id")
            if not self._project:
                raise ProviderConfigError("MissingProject", "set push.fcm.project_id")
            self._credentials = credentials
        return self._credentials

    async def _access_token(self) -> str:
        credentials = self._load()
        async with self._refresh_lock:
            expiry = credentials.expiry
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            if credentials.token is None or expiry is None or expiry - now < _REFRESH_MARGIN:
                if self._token_client is None:
                    self._token_client = httpx.Client(
                        verify=ssl_context(self.settings.ca_file), trust_env=False
                    )
                request = _HttpxTransport(self._token_client)
                try:
                    await asyncio.to_thread(credentials.refresh, request)
                except google.auth.exceptions.RefreshError as exc:
                    raise ProviderConfigError("TokenRefreshFailed", type(exc).__name__) from None
                except google.auth.exceptions.TransportError:
                    raise TemporaryFailure("TokenEndpointUnreachable") from None
                self.tokens_minted += 1
            return str(credentials.token)

    async def start(self) -> None:
        self._load()

    async def check_ready(self) -> str | None:
        try:
            self._load()
        except ProviderConfigError as exc:
            return f"FCM: {exc}"
        return None

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        if not _TOKEN_RE.match(address):
            raise PushRequestInvalid("device_token", "not an FCM registration token")
        message = translate(payload)
        message["token"] = address
        encoded = json.dumps({"message": message}, separators=(",", ":")).encode()
        if len(encoded) > _MAX_BYTES + len(address) + 64:
            raise PayloadTooLarge("payload", f"FCM messages are limited to {_MAX_BYTES} bytes")
        return PreparedMessage(address=address, body={"_raw": encoded}, headers={})

    async def send(self, message: PreparedMessage) -> None:
        token = await self._access_token()
        if self._client is None:
            self._client = make_client(
                http2=False,
                ca_file=self.settings.ca_file,
                timeout=self._timeout,
                max_connections=50,
            )
        url = f"{self.settings.url.rstrip('/')}/v1/projects/{self._project}/messages:send"
        try:
            response = await self._client.post(
                url,
                content=message.body["_raw"],
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        if response.status_code == 200:
            return
        try:
            body = jsonlimits.loads(response.content)
        except ValueError:
            body = None
        failure = classify(response.status_code, body, response.headers)
        if failure.reason == "UNAUTHENTICATED" and self._credentials is not None:
            self._credentials.token = None  # mint a new one on the retry
        raise failure

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._token_client is not None:
            self._token_client.close()
