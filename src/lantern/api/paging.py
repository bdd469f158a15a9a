"""Query parameters of the admin list routes that page: ``limit`` and ``cursor``.

A page answers ``nextCursor``: an opaque string to pass back as ``cursor`` for the next page,
``null`` on the last page. Cursors are keysets (the sort key of the last item given), never
offsets, so a row created or deleted between two requests neither repeats nor skips another.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

from lantern.errors import InvalidRequest

__all__ = [
    "decode_cursor",
    "decode_time_id",
    "encode_cursor",
    "encode_time_id",
    "parse_limit",
    "split_page",
]

T = TypeVar("T")

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


def split_page(rows: Sequence[T], size: int, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """A page of ``rows`` read with ``limit = size + 1``: its first ``size`` rows, and the
    ``nextCursor`` after the last of them (None when nothing follows)."""
    page = list(rows[:size])
    return page, encode_cursor(key(page[-1])) if len(rows) > size and page else None


def encode_time_id(created_at: float, item_id: str) -> str:
    """The cursor key of an item sorted by (creation time, id)."""
    return f"{created_at!r} {item_id}"


def decode_time_id(key: str) -> tuple[float, str]:
    """(creation time, id) from a key made by :func:`encode_time_id`; otherwise a 400."""
    created, _, item_id = key.partition(" ")
    try:
        return float(created), item_id
    except ValueError:
        raise InvalidRequest("cursor: not a cursor from a previous page (nextCursor)") from None
