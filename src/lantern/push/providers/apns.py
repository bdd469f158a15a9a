"""Apple Push Notification service: token-based auth over persistent HTTP/2 connections.

The legacy gateway opened a connection and signed a JWT for every push. Here one
:class:`ProviderToken` is signed (ES256, the ``.p8`` key) and reused for ``token_refresh_seconds``
(50 minutes by default; Apple rejects refreshes more often than every 20 minutes and tokens older
than 60), and a small pool of persistent HTTP/2 connections (:class:`H2Client`: hand-written
HTTP/2 framing with the ``hpack`` library; see that module for why not httpx or h2) multiplexes
all requests to the APNs host.

Payload header fields given inside ``aps`` under the legacy names (``push-type``, ``priority``,
``expiration``, ``collapse-id``, ``id``) become ``apns-*`` headers and are removed from the body;
the seed's top-level ``expiry`` (milliseconds from now) becomes ``apns-expiration``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

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
from lantern.push.providers.h2client import H2Client, H2Error
from lantern.push.providers.http import retry_after, ssl_context
from lantern.settings.push import APNsSettings

_TOKEN_RE = re.compile(r"^[0-9a-fA-F]{32,400}$")
_PUSH_TYPES = {
    "alert": "",
    "background": "",
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "mdm": "",
    "location": ".location-query",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "widgets": ".push-type.widgets",
    "controls": ".push-type.controls",
}
# Connections to the APNs host; more open only when the ones there are reach the server's
# MAX_CONCURRENT_STREAMS (1000 at Apple once the provider token is accepted).
MAX_CONNECTIONS = 4
_HEADER_FIELDS = ("push-type", "priority", "expiration", "collapse-id", "id")

# Apple's reasons (Sending notification requests to APNs, table of status codes and reasons).
DEAD_TOKEN_REASONS = frozenset(
    {"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"}
)
RETRYABLE_REASONS = frozenset(
    {
        "TooManyRequests",
        "TooManyProviderTokenUpdates",
        "ExpiredProviderToken",
        "IdleTimeout",
        "InternalServerError",
        "ServiceUnavailable",
        "Shutdown",
    }
)
CONFIG_REASONS = frozenset(
    {
        "BadCertificate",
        "BadCertificateEnvironment",
        "BadTopic",
        "InvalidProviderToken",
        "MissingProviderToken",
        "MissingTopic",
        "TopicDisallowed",
        "Forbidden",
        "BadPath",
        "MethodNotAllowed",
    }
)
CALLER_REASONS = frozenset(
    {
        "BadCollapseId",
        "BadExpirationDate",
        "BadMessageId",
        "BadPriority",
        "DuplicateHeaders",
        "InvalidPushType",
        "MissingDeviceToken",
        "PayloadEmpty",
        "PayloadTooLarge",
        "BadRequest",
    }
)


def _header_value_ok(value: str, max_bytes: int) -> bool:
    """Fits ``max_bytes`` as UTF-8 and is a valid HTTP/2 field value (no control characters,
    no surrounding whitespace): the HTTP/2 client does not re-validate headers, and a bad one
    would make the server reset the connection every other push shares."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return False
    return (
        size <= max_bytes
        and value == value.strip(" \t")
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    )


def classify(status: int, reason: str | None, timestamp: float | None = None) -> ProviderFailure:
    """The failure class of an APNs error response."""
    name = reason or f"HTTP{status}"
    if name in DEAD_TOKEN_REASONS or status == 410:
        return DeadToken(name, timestamp=timestamp)
    if name in RETRYABLE_REASONS or status == 429 or status >= 500:
        return TemporaryFailure(name)
    if name in CONFIG_REASONS or status in (403, 404, 405):
        return ProviderConfigError(name)
    if name in CALLER_REASONS or status in (400, 413):
        return CallerError(name)
    return PermanentFailure(name)


class ProviderToken:
    """The APNs provider JWT, signed once and reused until ``lifetime`` seconds old."""

    def __init__(
        self,
        key: EllipticCurvePrivateKey,
        key_id: str,
        team_id: str,
        *,
        lifetime: float = 3000.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._lifetime = lifetime
        self._clock = clock
        self._token: str | None = None
        self._issued_at = 0.0
        self.signed = 0  # how many tokens were signed (observable by tests and metrics)

    @classmethod
    def from_file(cls, path: Path, key_id: str, team_id: str, **kwargs: Any) -> ProviderToken:
        """Load the ``.p8`` key; raises ProviderConfigError if missing or not an EC P-256 key."""
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ProviderConfigError("InvalidSigningKey", f"cannot load {path}: {exc}") from None
        if not isinstance(key, EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ProviderConfigError("InvalidSigningKey", f"{path} is not an EC P-256 key")
        return cls(key, key_id, team_id, **kwargs)

    def get(self) -> str:
        now = self._clock()
        if self._token is None or now - self._issued_at >= self._lifetime:
            self._issued_at = now
            self._token = jwt.encode(
                {"iss": self._team_id, "iat": int(now)},
                self._key,
                algorithm="ES256",
                headers={"kid": self._key_id},
            )
            self.signed += 1
        return self._token

    def invalidate(self, token: str) -> None:
        """Apple said ``token`` expired: sign a new one next time (if nobody did already)."""
        if self._token == token:
            self._token = None


class APNsProvider(PushProvider):
    """``apns:<hex token>`` destinations."""

    scheme = "apns"
    name = "apns"

    def __init__(
        self,
        settings: APNsSettings,
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_in_flight=settings.max_concurrent_sends)
        assert settings.key_file and settings.key_id and settings.team_id and settings.topic
        self.settings = settings
        self.topic = settings.topic
        host, _, port = settings.effective_host.rpartition(":")
        if not host or not port.isdigit():
            host, port = settings.effective_host, "443"
        self.host = host.strip("[]")
        self.port = int(port)
        self._timeout = timeout
        self._clock = clock
        self._token: ProviderToken | None = None
        self._client: H2Client | None = None
        self._authorization: tuple[str, bytes] = ("", b"")  # (JWT, its header value)

    @property
    def provider_token(self) -> ProviderToken:
        if self._token is None:
            s = self.settings
            assert s.key_file and s.key_id and s.team_id
            self._token = ProviderToken.from_file(
                s.key_file, s.key_id, s.team_id, lifetime=s.token_refresh_seconds, clock=self._clock
            )
        return self._token

    @property
    def client(self) -> H2Client:
        if self._client is None:
            self._client = H2Client(
                self.host,
                self.port,
                ssl_context(self.settings.ca_file),
                max_connections=MAX_CONNECTIONS,
                connect_timeout=self._timeout,
                request_timeout=self._timeout,
            )
        return self._client

    async def start(self) -> None:
        self.provider_token  # noqa: B018 - load the key now so a bad key fails at startup
        self.client  # noqa: B018

    async def check_ready(self) -> str | None:
        try:
            self.provider_token.get()
        except ProviderConfigError as exc:
            return f"APNs: {exc}"
        return None

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        if not _TOKEN_RE.match(address):
            raise PushRequestInvalid(
                "device_token", "an APNs device token is a hexadecimal string (apns:<hex>)"
            )
        body = dict(payload)
        aps_in = body.get("aps")
        if not isinstance(aps_in, Mapping):
            raise PushRequestInvalid("payload.aps", "an APNs payload needs an 'aps' object")
        aps = dict(aps_in)
        headers: dict[str, str] = {}
        fields = {name: aps.pop(name) for name in _HEADER_FIELDS if name in aps}
        push_type = fields.get("push-type")
        if push_type is None:
            push_type = (
                "alert" if any(k in aps for k in ("alert", "badge", "sound")) else "background"
            )
        if not isinstance(push_type, str) or push_type not in _PUSH_TYPES:
            raise PushRequestInvalid(
                "payload.aps.push-type", f"must be one of {', '.join(sorted(_PUSH_TYPES))}"
            )
        headers["apns-push-type"] = push_type
        headers["apns-topic"] = self.topic + _PUSH_TYPES[push_type]
        priority = fields.get("priority", 5 if push_type == "background" else None)
        if priority is not None:
            if priority not in (1, 5, 10, "1", "5", "10") or isinstance(priority, bool):
                raise PushRequestInvalid("payload.aps.priority", "must be 1, 5 or 10")
            headers["apns-priority"] = str(priority)
        expiration = fields.get("expiration")
        if expiration is None and "expiry" in body:
            expiry = body["expiry"]
            if not isinstance(expiry, int | float) or isinstance(expiry, bool) or expiry < 0:
                raise PushRequestInvalid(
                    "payload.expiry", "must be a non-negative number of milliseconds from now"
                )
            expiration = int(time.time() + expiry / 1000.0)
        if expiration is not None:
            if not isinstance(expiration, int) or isinstance(expiration, bool) or expiration < 0:
                raise PushRequestInvalid(
                    "payload.aps.expiration", "must be epoch seconds (an integer >= 0)"
                )
            headers["apns-expiration"] = str(expiration)
        collapse_id = fields.get("collapse-id")
        if collapse_id is not None:
            if not isinstance(collapse_id, str) or not _header_value_ok(collapse_id, 64):
                raise PushRequestInvalid(
                    "payload.aps.collapse-id",
                    "must be a string of <= 64 bytes without control characters",
                )
            headers["apns-collapse-id"] = collapse_id
        apns_id = fields.get("id")
        if apns_id is not None:
            try:
                headers["apns-id"] = str(uuid.UUID(str(apns_id)))
            except ValueError:
                raise PushRequestInvalid("payload.aps.id", "must be a UUID") from None
        if "actions" in body and not isinstance(body["actions"], list):
            raise PushRequestInvalid("payload.actions", "must be a list")
        body["aps"] = aps
        try:
            encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise PushRequestInvalid(
                "payload", "contains text that is not valid Unicode (a lone surrogate)"
            ) from None
        limit = 5120 if push_type == "voip" else 4096
        if len(encoded) > limit:
            raise PayloadTooLarge(
                "payload", f"APNs accepts at most {limit} bytes; this one is {len(encoded)}"
            )
        # No content-type: APNs bodies are always JSON and Apple's header list has none.
        return PreparedMessage(address=address.lower(), body={"_raw": encoded}, headers=headers)

    async def send(self, message: PreparedMessage) -> None:
        token = self.provider_token.get()
        if self._authorization[0] is not token:
            self._authorization = (token, b"bearer " + token.encode())
        headers = [(b"authorization", self._authorization[1])]
        headers += [(name.encode(), value.encode()) for name, value in message.headers.items()]
        try:
            response = await self.client.request(
                f"/3/device/{message.address}", headers, message.body["_raw"]
            )
        except H2Error as exc:
            # GOAWAY carries Apple's reason; a configuration problem is not worth retrying.
            if exc.reason in CONFIG_REASONS:
                raise ProviderConfigError(exc.reason) from None
            raise TemporaryFailure(exc.reason) from None
        if response.status == 200:
            return
        reason: str | None = None
        timestamp: float | None = None
        try:
            data = jsonlimits.loads(response.body)
            if isinstance(data, dict):
                if isinstance(data.get("reason"), str):
                    reason = data["reason"]
                if isinstance(data.get("timestamp"), int | float):
                    timestamp = data["timestamp"] / 1000.0
        except ValueError:
            pass
        failure = classify(response.status, reason, timestamp)
        if reason == "ExpiredProviderToken":
            self.provider_token.invalidate(token)
        if isinstance(failure, TemporaryFailure):
            failure.retry_after = retry_after(response.headers)
        raise failure

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
