"""Signed URLs: HMAC-SHA256 over (method, path, expiry, claims), verified in constant time.

A link is ``<path>?<claims>&expires=<epoch s>&signature=<base64url>``. Every query parameter other
than ``signature`` is covered by the signature, so adding, removing or changing any of them (the
expiry included) makes the link invalid. Single use is not the signer's job: the service that
consumes a link records its use in the database.

Errors: :class:`LinkError` (a :class:`~lantern.store.db.StoreError`) with :class:`LinkInvalid`
(wrong or missing signature, malformed link) and :class:`LinkExpired` (valid but too late).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

from lantern.store.db import StoreError

SIGNING_KEY_FILE = "signing.key"
EXPIRES_PARAM = "expires"
SIGNATURE_PARAM = "signature"
_RESERVED = frozenset({EXPIRES_PARAM, SIGNATURE_PARAM})


class LinkError(StoreError):
    """A signed link cannot be used (HTTP 403)."""

    http_status = 403
    code = "LinkInvalid"


class LinkInvalid(LinkError):
    """The link is malformed or its signature does not match (it was altered or forged)."""


class LinkExpired(LinkError):
    """The link's signature is valid but its expiry time has passed."""

    code = "LinkExpired"


class UrlSigner:
    """Signs and verifies links with one secret key (see :func:`load_or_create_signing_key`)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing key must be at least 16 bytes")
        self._secret = secret

    def _mac(self, method: str, path: str, expires_at: int, claims: Mapping[str, str]) -> str:
        # JSON of a list is an unambiguous encoding: no separator can be smuggled into a field.
        message = json.dumps(
            [method.upper(), path, expires_at, sorted(claims.items())], separators=(",", ":")
        ).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, method: str, path: str, expires_at: int, claims: Mapping[str, str]) -> str:
        """The query string (no ``?``) that makes ``method path`` valid until ``expires_at``."""
        clash = _RESERVED.intersection(claims)
        if clash:
            raise ValueError(f"claim names {sorted(clash)} are reserved by the signer")
        signature = self._mac(method, path, expires_at, claims)
        params = [*sorted(claims.items()), (EXPIRES_PARAM, str(expires_at))]
        params.append((SIGNATURE_PARAM, signature))
        return urlencode(params)

    def verify(
        self, method: str, path: str, query: Mapping[str, str], now: float
    ) -> Mapping[str, str]:
        """The claims of a valid link; raises :class:`LinkInvalid` or :class:`LinkExpired`.

        The signature is checked before the expiry, so a link whose expiry was edited is invalid,
        not merely expired.
        """
        signature = query.get(SIGNATURE_PARAM)
        expires_raw = query.get(EXPIRES_PARAM)
        if not signature or not expires_raw:
            raise LinkInvalid("the link is not signed (missing expires or signature)")
        try:
            expires_at = int(expires_raw)
        except ValueError:
            raise LinkInvalid("the link's expiry is not an integer") from None
        claims = {k: v for k, v in query.items() if k not in _RESERVED}
        expected = self._mac(method, path, expires_at, claims)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkInvalid("the link's signature does not match")
        if now >= expires_at:
            raise LinkExpired("the link has expired")
        return claims


def load_or_create_signing_key(data_dir: Path) -> bytes:
    """The link-signing key in ``<data_dir>/signing.key`` (32 random bytes, hex, mode 0600).

    Created on first use; concurrent creators agree on one key because creation is exclusive.
    """
    path = data_dir / SIGNING_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key_hex = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(key_hex + "\n")
                f.flush()
                os.fsync(f.fileno())
            return bytes.fromhex(key_hex)
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise StoreError(
            f"{path} does not hold a hex signing key; delete it to create one"
        ) from None
    if len(key) < 16:
        raise StoreError(f"{path} holds a key shorter than 16 bytes; delete it to create one")
    return key
