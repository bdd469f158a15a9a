"""The shadow document semantics as pure functions: parsing and limits with AWS's codes and
messages, merge with null deletes, delta, metadata, versions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lantern.shadows import messages
from lantern.shadows.document import (
    MAX_STATE_BYTES,
    Shadow,
    UpdateRequest,
    apply_update,
    delta,
    depth,
    leaf_metadata,
    merge,
    parse_body,
    parse_update,
    same,
)
from lantern.shadows.errors import ShadowError

T = 1_700_000_000


def update(body: dict[str, Any]) -> UpdateRequest:
    return parse_update(parse_body(json.dumps(body).encode()))


def refused(payload: bytes | dict[str, Any]) -> ShadowError:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(ShadowError) as caught:
        parse_update(parse_body(raw))
    return caught.value


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b"{not json", 400, "Invalid JSON"),
        (b"[1, 2]", 400, "Invalid JSON"),
        (b"\xff\xfe{}", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
        (b"{}", 400, "Missing required node: state"),
        ({"state": None}, 400, "State node must be an object"),
        ({"state": [1]}, 400, "State node must be an object"),
        ({"state": {"desired": 1}}, 400, "Desired node must be an object"),
        ({"state": {"reported": "x"}}, 400, "Reported node must be an object"),
        ({"state": {"delta": {}}}, 400, "State contains an invalid node"),
        ({"state": {}, "version": "3"}, 400, "Invalid version"),
        ({"state": {}, "version": True}, 400, "Invalid version"),
        ({"state": {}, "version": -1}, 400, "Invalid version"),
        ({"state": {}, "clientToken": 5}, 400, "Invalid clientToken"),
        ({"state": {}, "clientToken": "x" * 65}, 400, "Invalid clientToken"),
        (
            {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}},
            400,
            "JSON contains too many levels of nesting; maximum is 6",
        ),
        (b"[" * 100 + b"]" * 100, 400, "JSON contains too many levels of nesting; maximum is 6"),
        (b" " * (128 * 1024 + 1), 413, "The payload exceeds the maximum size allowed"),
    ],
)
def test_malformed_requests_get_aws_codes(
    payload: bytes | dict[str, Any], status: int, message: str
) -> None:
    error = refused(payload)
    assert (error.status, error.message) == (status, message)
    assert error.http_status == status


def test_six_levels_and_a_64_byte_token_are_accepted() -> None:
    request = update(
        {
            "state": {"reported": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
            "clientToken": "t" * 64,
        }
    )
    assert request.client_token == "t" * 64
    assert depth(request.sections["reported"]) == 6
    assert depth([[1]]) == 2  # arrays count as levels too


def test_state_over_8_kb_is_too_large_and_at_8_kb_is_not() -> None:
    overhead = len('{"desired":{"k":""},"reported":{}}')
    fits = update({"state": {"desired": {"k": "x" * (MAX_STATE_BYTES - overhead)}}})
    assert apply_update(None, 0, fits, T).version == 1
    over = update({"state": {"desired": {"k": "x" * (MAX_STATE_BYTES - overhead + 1)}}})
    with pytest.raises(ShadowError) as caught:
        apply_update(None, 0, over, T)
    assert caught.value.status == 413


def test_merge_nulls_delete_keys_and_emptied_objects() -> None:
    state = {"a": 1, "b": {"c": 2, "d": 3}, "e": {"f": 4}}
    meta = leaf_metadata(state, 1)
    merged, merged_meta = merge(state, meta, {"a": None, "b": {"c": None}, "e": {"f": None}}, 2)
    assert merged == {"b": {"d": 3}}
    assert merged_meta == {"b": {"d": {"timestamp": 1}}}
    assert state == {"a": 1, "b": {"c": 2, "d": 3}, "e": {"f": 4}}  # inputs unchanged


def test_merge_replaces_arrays_and_scalars_with_objects() -> None:
    merged, meta = merge({"l": [1, 2, 3], "s": 1}, {}, {"l": [{"x": 1}], "s": {"t": True}}, 7)
    assert merged == {"l": [{"x": 1}], "s": {"t": True}}
    assert meta == {"l": [{"x": {"timestamp": 7}}], "s": {"t": {"timestamp": 7}}}


def test_delta_compares_objects_by_leaf_and_arrays_as_values() -> None:
    desired = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2], "m": [1], "f": True, "n": 1}
    reported = {"a": 1, "b": {"c": 2, "d": 4}, "l": [1, 2], "m": [1, 0], "f": 1, "n": 1.0}
    assert delta(desired, reported) == {"b": {"d": 3}, "m": [1], "f": True}


def test_versions_conflicts_and_continuation_after_delete() -> None:
    first = apply_update(None, 0, update({"state": {"desired": {"a": 1}}}), T)
    assert first.version == 1
    second = apply_update(first, 0, update({"state": {"reported": {"a": 1}}, "version": 1}), T)
    assert second.version == 2
    with pytest.raises(ShadowError) as caught:
        apply_update(second, 0, update({"state": {}, "version": 1}), T)
    assert (caught.value.status, caught.value.message) == (409, "Version conflict")
    # Created again after a delete at version 7: continues from it.
    assert apply_update(None, 7, update({"state": {"desired": {"a": 1}}}), T).version == 8


def test_section_null_clears_it() -> None:
    shadow = apply_update(
        None, 0, update({"state": {"desired": {"a": 1}, "reported": {"b": 2}}}), T
    )
    cleared = apply_update(shadow, 0, update({"state": {"desired": None}}), T + 1)
    assert (cleared.desired, cleared.desired_meta) == ({}, {})
    assert cleared.reported == {"b": 2}


def test_messages_have_aws_shapes() -> None:
    request = update({"state": {"desired": {"color": "red", "gone": None}}, "clientToken": "t1"})
    before = Shadow(3, reported={"color": "blue"}, reported_meta={"color": {"timestamp": 1}})
    shadow = apply_update(before, 0, request, T)
    accepted = messages.update_accepted(request, shadow, "t1", T)
    assert accepted == {
        "state": {"desired": {"color": "red", "gone": None}},
        "metadata": {"desired": {"color": {"timestamp": T}, "gone": {"timestamp": T}}},
        "version": 4,
        "timestamp": T,
        "clientToken": "t1",
    }
    got = messages.get_accepted(shadow, None, T + 5)
    assert got["state"] == {
        "desired": {"color": "red"},
        "reported": {"color": "blue"},
        "delta": {"color": "red"},
    }
    assert got["metadata"] == {
        "desired": {"color": {"timestamp": T}},
        "reported": {"color": {"timestamp": 1}},
    }
    assert got["version"] == 4 and got["timestamp"] == T + 5 and "clientToken" not in got
    assert messages.delta_message(shadow, "t1", T) == {
        "version": 4,
        "state": {"color": "red"},
        "metadata": {"color": {"timestamp": T}},
        "timestamp": T,
        "clientToken": "t1",
    }
    docs = messages.documents_message(before, shadow, None, T)
    assert docs["previous"]["version"] == 3 and docs["current"]["version"] == 4
    assert "previous" not in messages.documents_message(None, shadow, None, T)


json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
objects = st.dictionaries(st.sampled_from("abc"), json_values, max_size=3)


def _no_nulls_or_empties(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(
            v is not None and _no_nulls_or_empties(v) for v in value.values()
        )
    return True


def _shape_matches(state: Any, meta: Any) -> bool:
    if isinstance(state, dict):
        return (
            isinstance(meta, dict)
            and state.keys() == meta.keys()
            and all(_shape_matches(v, meta[k]) for k, v in state.items())
        )
    if isinstance(state, list):
        return (
            isinstance(meta, list)
            and len(meta) == len(state)
            and all(_shape_matches(v, m) for v, m in zip(state, meta, strict=True))
        )
    return meta == {"timestamp": meta.get("timestamp")} and isinstance(meta["timestamp"], int)


_QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_QUICK
@given(objects, objects, objects)
def test_merge_properties(
    base: dict[str, Any], patch1: dict[str, Any], patch2: dict[str, Any]
) -> None:
    state, meta = merge({}, {}, base, 1)
    state, meta = merge(state, meta, patch1, 2)
    state, meta = merge(state, meta, patch2, 3)
    # No nulls at object level and no empty objects are ever stored; metadata mirrors the state.
    assert not state or _no_nulls_or_empties(state)
    assert _shape_matches(state, meta)
    # Merging the same patch again changes no state (idempotent).
    again, _ = merge(state, meta, patch2, 4)
    assert again == state


@_QUICK
@given(objects, objects)
def test_delta_properties(desired: dict[str, Any], reported: dict[str, Any]) -> None:
    desired, _ = merge({}, {}, desired, 1)
    reported, _ = merge({}, {}, reported, 1)
    found = delta(desired, reported)
    assert delta(desired, desired) == {}
    # Reporting the delta makes it vanish.
    after, _ = merge(reported, {}, found, 2)
    assert delta(desired, after) == {}
    assert all(k in desired for k in found)
    assert same(desired, desired)
