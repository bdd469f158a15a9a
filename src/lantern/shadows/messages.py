"""The JSON payloads of the Device Shadow service's replies and broadcasts (AWS's shapes).

Empty state sections are left out (a shadow with nothing desired has no ``desired``); every
payload carries ``timestamp`` (seconds) and echoes ``clientToken`` when the request had one.
"""

from __future__ import annotations

import json
from typing import Any

from lantern.shadows.document import Shadow, UpdateRequest, delta, delta_metadata, leaf_metadata
from lantern.shadows.errors import ShadowError

__all__ = [
    "delete_accepted",
    "delta_message",
    "documents_message",
    "encode",
    "get_accepted",
    "rejected",
    "snapshot",
    "update_accepted",
]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _stamp(message: dict[str, Any], token: str | None, timestamp: int) -> dict[str, Any]:
    message["timestamp"] = timestamp
    if token is not None:
        message["clientToken"] = token
    return message


def _sections(shadow: Shadow) -> tuple[dict[str, Any], dict[str, Any]]:
    state: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if shadow.desired:
        state["desired"], meta["desired"] = shadow.desired, shadow.desired_meta
    if shadow.reported:
        state["reported"], meta["reported"] = shadow.reported, shadow.reported_meta
    return state, meta


def snapshot(shadow: Shadow) -> dict[str, Any]:
    """``{"state", "metadata", "version"}`` as the ``/update/documents`` message shows it."""
    state, meta = _sections(shadow)
    return {"state": state, "metadata": meta, "version": shadow.version}


def get_accepted(shadow: Shadow, token: str | None, timestamp: int) -> dict[str, Any]:
    """The whole document, with its ``delta`` in ``state`` when desired and reported differ."""
    state, meta = _sections(shadow)
    found = delta(shadow.desired, shadow.reported)
    if found:
        state["delta"] = found
    message = {"state": state, "metadata": meta, "version": shadow.version}
    return _stamp(message, token, timestamp)


def update_accepted(
    request: UpdateRequest, shadow: Shadow, token: str | None, timestamp: int
) -> dict[str, Any]:
    """The sections the update sent (nulls included), their metadata, the new version."""
    meta = {k: leaf_metadata(v, timestamp) for k, v in request.sections.items()}
    message = {"state": dict(request.sections), "metadata": meta, "version": shadow.version}
    return _stamp(message, token, timestamp)


def delta_message(shadow: Shadow, token: str | None, timestamp: int) -> dict[str, Any] | None:
    """The ``/update/delta`` message (the whole delta), or None when there is no delta."""
    found = delta(shadow.desired, shadow.reported)
    if not found:
        return None
    message = {
        "version": shadow.version,
        "state": found,
        "metadata": delta_metadata(found, shadow.desired_meta),
    }
    return _stamp(message, token, timestamp)


def documents_message(
    previous: Shadow | None, current: Shadow, token: str | None, timestamp: int
) -> dict[str, Any]:
    """``/update/documents``: the shadow before (left out if it did not exist) and after."""
    message: dict[str, Any] = {}
    if previous is not None:
        message["previous"] = snapshot(previous)
    message["current"] = snapshot(current)
    return _stamp(message, token, timestamp)


def delete_accepted(version: int, token: str | None, timestamp: int) -> dict[str, Any]:
    return _stamp({"version": version}, token, timestamp)


def rejected(error: ShadowError, token: str | None, timestamp: int) -> dict[str, Any]:
    return _stamp({"code": error.status, "message": error.message}, token, timestamp)
