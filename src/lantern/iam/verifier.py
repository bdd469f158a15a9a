"""Who signed a request, and whether that key's role allows what it asks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lantern.iam import sigv4
from lantern.iam.errors import unrecognized_client
from lantern.iam.keys import AccessKeys, ActiveKey

__all__ = ["Caller", "Kind", "SignatureVerifier", "allowed", "is_signed"]

Kind = Literal["read", "write", "delete"]
_ALLOWED: dict[str, frozenset[str]] = {
    "readonly": frozenset({"read"}),
    "operator": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "delete"}),
}


def allowed(role: str, kind: Kind) -> bool:
    """Whether a key of ``role`` may do a ``kind`` of call."""
    return kind in _ALLOWED.get(role, frozenset())


def is_signed(request: sigv4.HttpRequest) -> bool:
    """Whether the request carries a SigV4 signature (header or presigned), good or bad."""
    auth = request.header("authorization") or ""
    return auth.startswith(sigv4.ALGORITHM) or "X-Amz-Algorithm=" in request.query


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified signer, and the region and service of its credential scope."""

    key: ActiveKey
    region: str
    service: str


class SignatureVerifier:
    def __init__(self, keys: AccessKeys, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.clock = clock

    async def authenticate(self, request: sigv4.HttpRequest) -> Caller:
        """The verified signer of ``request``; raises the AWS refusal otherwise
        (``MissingAuthenticationTokenException``, ``IncompleteSignatureException``,
        ``UnrecognizedClientException`` for an unknown or disabled key,
        ``InvalidSignatureException``)."""
        sig = sigv4.parse(request)
        key = await self.keys.active(sig.key_id)
        if key is None:
            raise unrecognized_client()
        sigv4.verify(request, sig, key.secret, self.clock())
        await self.keys.used(key.id)
        return Caller(key, sig.region, sig.service)
