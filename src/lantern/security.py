"""Small security helpers every layer may use."""

from __future__ import annotations

import hmac


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())
