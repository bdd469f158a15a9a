"""The shadow document as AWS IoT defines it, as pure functions (no I/O, no clock).

A stored :class:`Shadow` has two state sections, ``desired`` and ``reported``, the metadata of
each (per leaf ``{"timestamp": <seconds>}``, arrays as a list of their elements' metadata) and a
``version``. An update merges its sections into the stored ones: a key set to ``null`` is
removed, an object merges key by key, anything else (arrays included) replaces the stored value;
an object left empty is removed. The ``delta`` is computed, never stored: every desired key whose
value differs from the reported one (objects compared leaf by leaf, arrays as whole values).

Limits are AWS's (docs/shadows.md): state of at most :data:`MAX_STATE_BYTES` (compact JSON of
``desired`` and ``reported`` after the update), at most :data:`MAX_DEPTH` levels below
``desired``/``reported``, a ``clientToken`` of at most :data:`MAX_CLIENT_TOKEN_BYTES` bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lantern import jsonlimits
from lantern.shadows.errors import (
    bad_request,
    conflict,
    too_large,
    unsupported_encoding,
)

__all__ = [
    "CLASSIC",
    "MAX_CLIENT_TOKEN_BYTES",
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "MAX_STATE_BYTES",
    "SHADOW_NAME",
    "THING_NAME",
    "Shadow",
    "UpdateRequest",
    "apply_update",
    "check_names",
    "client_token",
    "delta",
    "delta_metadata",
    "depth",
    "from_stored",
    "leaf_metadata",
    "merge",
    "parse_body",
    "parse_update",
    "same",
    "state_size",
    "to_stored",
    "version_of",
]

MAX_STATE_BYTES = 8 * 1024
MAX_DEPTH = 6
MAX_CLIENT_TOKEN_BYTES = 64
#: A request payload larger than this is refused (413) before it is parsed.
MAX_PAYLOAD_BYTES = 128 * 1024
#: The classic (unnamed) shadow's name in the store.
CLASSIC = ""
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
SHADOW_NAME = re.compile(r"[$a-zA-Z0-9:_-]{1,64}")
_SECTIONS = ("desired", "reported")
_TOO_DEEP = f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}"


@dataclass(frozen=True, slots=True)
class Shadow:
    """A shadow as stored: state sections, their metadata, version and last update time."""

    version: int
    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    desired_meta: dict[str, Any] = field(default_factory=dict)
    reported_meta: dict[str, Any] = field(default_factory=dict)
    timestamp: int = 0


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """A checked update: the sections it sends (a section may be None: delete it)."""

    sections: dict[str, dict[str, Any] | None]
    version: int | None = None
    client_token: str | None = None


# -- parsing -------------------------------------------------------------------------------------
def parse_body(payload: bytes) -> dict[str, Any]:
    """A request payload as a JSON object (an empty payload is ``{}``)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise too_large()
    if not payload.strip():
        return {}
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise unsupported_encoding() from None
    try:
        body = jsonlimits.loads(text)
    except jsonlimits.JSONTooDeep:
        raise bad_request(_TOO_DEEP) from None
    except ValueError:
        raise bad_request("Invalid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON")
    return body


def client_token(body: dict[str, Any]) -> str | None:
    """The request's ``clientToken`` (a string of at most 64 UTF-8 bytes), if any."""
    token = body.get("clientToken")
    if token is None:
        return None
    if not isinstance(token, str) or len(token.encode("utf-8")) > MAX_CLIENT_TOKEN_BYTES:
        raise bad_request("Invalid clientToken")
    return token


def version_of(body: dict[str, Any]) -> int | None:
    """The request's ``version`` (a non-negative integer), if any."""
    version = body.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise bad_request("Invalid version")
    return version


def depth(value: Any) -> int:
    """Levels of objects and arrays in ``value`` (a scalar is 0, ``{"a": 1}`` is 1)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def parse_update(body: dict[str, Any]) -> UpdateRequest:
    """Check an update request as AWS does; raise the 400 it answers."""
    token = client_token(body)
    version = version_of(body)
    if "state" not in body:
        raise bad_request("Missing required node: state")
    state = body["state"]
    if not isinstance(state, dict):
        raise bad_request("State node must be an object")
    sections: dict[str, dict[str, Any] | None] = {}
    for key, value in state.items():
        if key not in _SECTIONS:
            raise bad_request("State contains an invalid node")
        if value is not None and not isinstance(value, dict):
            raise bad_request(f"{key.capitalize()} node must be an object")
        if value is not None and depth(value) > MAX_DEPTH:
            raise bad_request(_TOO_DEEP)
        sections[key] = value
    return UpdateRequest(sections, version, token)


def check_names(thing: str, shadow: str) -> None:
    """Refuse a thing or shadow name outside AWS's patterns (400)."""
    if not THING_NAME.fullmatch(thing):
        raise bad_request("Invalid thing name")
    if shadow != CLASSIC and not SHADOW_NAME.fullmatch(shadow):
        raise bad_request("Invalid shadow name")


# -- semantics -------------------------------------------------------------------------------------
def leaf_metadata(value: Any, timestamp: int) -> Any:
    """The metadata of a newly written ``value``: per leaf ``{"timestamp"}``, objects by key,
    arrays element by element."""
    if isinstance(value, dict):
        return {k: leaf_metadata(v, timestamp) for k, v in value.items()}
    if isinstance(value, list):
        return [leaf_metadata(v, timestamp) for v in value]
    return {"timestamp": timestamp}


def merge(
    state: dict[str, Any], meta: dict[str, Any], patch: dict[str, Any], timestamp: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``state`` and its metadata with ``patch`` merged in (module docstring); inputs unchanged."""
    out_state = dict(state)
    out_meta = dict(meta)
    for key, value in patch.items():
        if isinstance(value, dict):
            base = out_state.get(key)
            base_meta = out_meta.get(key)
            if not isinstance(base, dict):
                base, base_meta = {}, {}
            elif not isinstance(base_meta, dict):
                base_meta = {}
            merged, merged_meta = merge(base, base_meta, value, timestamp)
            if merged:
                out_state[key], out_meta[key] = merged, merged_meta
                continue
            value = None  # emptied: removed like a null
        if value is None:
            out_state.pop(key, None)
            out_meta.pop(key, None)
        else:
            out_state[key] = value
            out_meta[key] = leaf_metadata(value, timestamp)
    return out_state, out_meta


def same(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but a boolean is no number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def delta(desired: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    """Every desired key whose value differs from the reported one (objects by leaf)."""
    out: dict[str, Any] = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = want
            continue
        have = reported[key]
        if isinstance(want, dict) and isinstance(have, dict):
            sub = delta(want, have)
            if sub:
                out[key] = sub
        elif not same(want, have):
            out[key] = want
    return out


def delta_metadata(found: dict[str, Any], desired_meta: dict[str, Any]) -> dict[str, Any]:
    """The desired metadata of the keys in ``found`` (a :func:`delta`)."""
    out: dict[str, Any] = {}
    for key, value in found.items():
        meta = desired_meta.get(key)
        if isinstance(value, dict) and isinstance(meta, dict):
            out[key] = delta_metadata(value, meta)
        elif meta is not None:
            out[key] = meta
    return out


def state_size(desired: dict[str, Any], reported: dict[str, Any]) -> int:
    """Bytes of the state as compact JSON (what :data:`MAX_STATE_BYTES` limits)."""
    state = {"desired": desired, "reported": reported}
    return len(json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def apply_update(
    current: Shadow | None, base_version: int, request: UpdateRequest, timestamp: int
) -> Shadow:
    """The shadow ``request`` leaves. ``current`` is None when none exists; ``base_version`` is
    then the version a deleted shadow of that name had (0 if none): the new one follows it."""
    version = current.version if current is not None else base_version
    if request.version is not None and request.version != version:
        raise conflict()
    shadow = current if current is not None else Shadow(version)
    desired, desired_meta = shadow.desired, shadow.desired_meta
    reported, reported_meta = shadow.reported, shadow.reported_meta
    for section, patch in request.sections.items():
        if section == "desired":
            if patch is None:
                desired, desired_meta = {}, {}
            else:
                desired, desired_meta = merge(desired, desired_meta, patch, timestamp)
        elif patch is None:
            reported, reported_meta = {}, {}
        else:
            reported, reported_meta = merge(reported, reported_meta, patch, timestamp)
    if state_size(desired, reported) > MAX_STATE_BYTES:
        raise too_large()
    return Shadow(version + 1, desired, reported, desired_meta, reported_meta, timestamp)


def to_stored(shadow: Shadow) -> dict[str, Any]:
    """``shadow`` as the JSON object the store keeps (its version is a column of its own)."""
    return {
        "desired": shadow.desired,
        "reported": shadow.reported,
        "desired_meta": shadow.desired_meta,
        "reported_meta": shadow.reported_meta,
        "timestamp": shadow.timestamp,
    }


def from_stored(version: int, stored: dict[str, Any]) -> Shadow:
    """The :class:`Shadow` of a stored object (see :func:`to_stored`)."""
    return Shadow(
        version,
        stored["desired"],
        stored["reported"],
        stored["desired_meta"],
        stored["reported_meta"],
        stored["timestamp"],
    )
