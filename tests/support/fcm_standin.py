"""A local FCM HTTP v1 endpoint with Google's OAuth2 token endpoint (service-account JWT grant).

The token endpoint verifies the assertion's RS256 signature with the service account's public
key, its audience and scope, and mints access tokens that ``messages:send`` requires. Replies to
sends are scripted per registration token as FCM error bodies with ``details[].errorCode``.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.httpstandin import HTTPStandIn, json_reply

PROJECT = "lantern-test"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class FCMReply:
    status: int
    error_code: str | None = None
    message: str = "error"
    retry_after: str | None = None


@dataclass
class FCMStandIn:
    directory: Path
    expires_in: int = 3600
    tokens_minted: int = 0
    sent: list[dict[str, object]] = field(default_factory=list)
    script: dict[str, deque[FCMReply]] = field(default_factory=lambda: defaultdict(deque))
    _access: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = key.public_key()
        self._http = HTTPStandIn(self._handle)
        self.service_account_file = self.directory / "service-account.json"
        self.service_account_file.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "kid1",
                    "private_key": key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode(),
                    "client_email": f"push@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
            )
        )

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def token_uri(self) -> str:
        return f"{self._http.url}/token"

    def answer(self, token: str, *replies: FCMReply) -> None:
        with self._lock:
            self.script[token].extend(replies)

    def start(self) -> FCMStandIn:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        if path == "/token":
            form = urllib.parse.parse_qs(body.decode())
            try:
                claims = jwt.decode(
                    form["assertion"][0],
                    self._public,
                    algorithms=["RS256"],
                    audience="https://oauth2.googleapis.com/token",  # what Google checks
                )
            except (KeyError, jwt.PyJWTError):
                return json_reply(400, {"error": "invalid_grant"})
            if "firebase.messaging" not in claims.get("scope", ""):
                return json_reply(400, {"error": "invalid_scope"})
            access = "ya29." + secrets.token_urlsafe(16)
            with self._lock:
                self._access.add(access)
                self.tokens_minted += 1
            return json_reply(
                200, {"access_token": access, "expires_in": self.expires_in, "token_type": "Bearer"}
            )
        if path != f"/v1/projects/{PROJECT}/messages:send":
            return json_reply(
                404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "bad path"}}
            )
        auth = headers.get("authorization", "")
        with self._lock:
            known = auth.startswith("Bearer ") and auth[7:] in self._access
        if not known:
            return json_reply(
                401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "auth"}}
            )
        message = json.loads(body)["message"]
        with self._lock:
            queue = self.script.get(message.get("token", ""))
            reply = queue.popleft() if queue else None
            self.sent.append(message)
        if reply is None:
            return json_reply(200, {"name": f"projects/{PROJECT}/messages/{secrets.token_hex(4)}"})
        error: dict[str, object] = {
            "code": reply.status,
            "message": reply.message,
            "status": _STATUS_NAMES.get(reply.status, "UNKNOWN"),
        }
        if reply.error_code:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": reply.error_code,
                }
            ]
        extra = {"retry-after": reply.retry_after} if reply.retry_after else {}
        return json_reply(reply.status, {"error": error}, **extra)
