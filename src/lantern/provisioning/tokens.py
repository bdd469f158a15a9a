"""Certificate ownership tokens: unguessable, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["hash_token", "new_token"]


def new_token() -> str:
    """A fresh token: 48 random bytes (384 bits), URL-safe base64."""
    return secrets.token_urlsafe(48)


def hash_token(token: str) -> str:
    """What the registry stores and looks tokens up by (a dump cannot be replayed)."""
    return hashlib.sha256(token.encode()).hexdigest()
