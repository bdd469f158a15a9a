"""Query parameters of the admin list routes that page: ``limit`` and ``cursor``.

A page answers ``nextCursor``: an opaque string to pass back as ``cursor`` for the next page,
``null`` on the last page. Cursors are keysets (the sort key of the last item given), never
offsets, so a row created or deleted between two requests neither repeats nor skips another.
"""

from __future__ import annotations

import base64
import binascii

from lantern.errors import InvalidRequest

__all__ = ["decode_cursor", "encode_cursor", "parse_limit"]

_PREFIX = "k1:"  # a version, so a later key shape can tell old cursors apart


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """``limit`` as an int from 1 to ``maximum`` (``default`` when absent); otherwise a 400
    naming the parameter."""
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit() or len(text) > 9 or not 1 <= int(text) <= maximum:
        raise InvalidRequest(f"limit: must be an integer from 1 to {maximum} (got {raw!r})")
    return int(text)


def encode_cursor(key: str) -> str:
    """The opaque ``nextCursor`` continuing after the item whose sort key is ``key``."""
    return base64.urlsafe_b64encode((_PREFIX + key).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> str:
    """The sort key inside a cursor made by :func:`encode_cursor`; otherwise a 400 naming the
    parameter."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    if not text.startswith(_PREFIX):
        raise InvalidRequest("cursor: not a cursor from a previous page (nextCursor)")
    return text.removeprefix(_PREFIX)
