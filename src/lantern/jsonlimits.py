"""Depth-limited JSON parsing for everything that comes from outside (HTTP bodies, MQTT payloads).

``json.loads`` recurses once per nesting level: 64 KB of ``[`` raises :class:`RecursionError`,
which no caller expects (HTTP 500, a dropped MQTT request). :func:`loads` parses with a nesting
limit of :data:`MAX_DEPTH` and raises :class:`JSONTooDeep` (a :class:`ValueError`, so a caller
that only knows "invalid JSON" still refuses it cleanly) instead.

Cost on the hot path: a payload with at most :data:`MAX_DEPTH` ``[`` and ``{`` in total cannot
nest deeper, so after two ``count`` calls it is a plain ``json.loads``. Only other payloads pay
for a depth walk of the parsed value (iterative, so it cannot recurse itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lantern.errors import LanternError

__all__ = ["MAX_DEPTH", "JSONTooDeep", "check_depth", "exceeds_depth", "loads"]

#: Deepest nesting of objects/arrays accepted (``{}`` is depth 1).
MAX_DEPTH = 64

_PLAIN = json.JSONDecoder()


class JSONTooDeep(LanternError, ValueError):
    """The document nests objects/arrays deeper than :data:`MAX_DEPTH` levels (an invalid
    request: HTTP 400)."""

    http_status = 400
    code = "InvalidRequest"

    def __init__(self, limit: int = MAX_DEPTH, *, what: str = "JSON") -> None:
        super().__init__(f"{what} nested deeper than {limit} levels")
        self.limit = limit


def _may_be_deep(data: bytes | bytearray | str, limit: int) -> bool:
    if isinstance(data, str):
        return data.count("[") + data.count("{") > limit
    return data.count(b"[") + data.count(b"{") > limit


def loads(data: bytes | bytearray | str, *, decoder: json.JSONDecoder | None = None) -> Any:
    """``json.loads(data)`` (or ``decoder.decode``; bytes are decoded as UTF-8, BOM allowed),
    raising :class:`JSONTooDeep` for nesting deeper than :data:`MAX_DEPTH` and
    :class:`ValueError` (``JSONDecodeError``, ``UnicodeDecodeError``) for anything not JSON."""
    deep = _may_be_deep(data, MAX_DEPTH)
    if decoder is None:
        decode: Callable[[Any], Any] = json.loads
    else:
        decode = decoder.decode
        if not isinstance(data, str):
            data = bytes(data).decode("utf-8-sig")
    if not deep:
        return decode(data)
    try:
        value = decode(data)
    except RecursionError:
        raise JSONTooDeep from None
    if exceeds_depth(value):
        raise JSONTooDeep
    return value


def check_depth(data: bytes | bytearray | str) -> None:
    """Raise :class:`JSONTooDeep` when ``data`` nests deeper than :data:`MAX_DEPTH`; anything
    else (valid or not) passes, for parsers that report syntax errors themselves (pydantic)."""
    if not _may_be_deep(data, MAX_DEPTH):
        return
    try:
        value = _PLAIN.decode(data if isinstance(data, str) else bytes(data).decode("utf-8-sig"))
    except RecursionError:
        raise JSONTooDeep from None
    except ValueError:
        return
    if exceeds_depth(value):
        raise JSONTooDeep


def exceeds_depth(
    value: Any, limit: int = MAX_DEPTH, unwrap: Callable[[Any], Any] | None = None
) -> bool:
    """Whether ``value`` nests containers (dict, list, tuple, set) deeper than ``limit``.

    ``unwrap`` maps other wrapper objects (e.g. CBOR tags) to what they wrap, counted as a level,
    or returns None for a leaf. Iterative: safe for values of any depth.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = [k for k in item if not isinstance(k, _LEAVES)]
            children.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        elif unwrap is not None:
            inner = unwrap(item)
            if inner is None:
                continue
            children = (inner,)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if not isinstance(child, _LEAVES))
    return False


_LEAVES = (str, bytes, int, float, type(None))
