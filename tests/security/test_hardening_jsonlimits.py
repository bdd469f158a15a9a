"""lantern.jsonlimits: the nesting limit's boundary, every input type, and that it never
recurses itself."""

from __future__ import annotations

import json

import cbor2
import pytest

from lantern import jsonlimits
from lantern.jsonlimits import MAX_DEPTH, JSONTooDeep
from lantern.provisioning.codec import decode_request
from lantern.provisioning.errors import ProvisioningRejected


def arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("make", [arrays, objects])
@pytest.mark.parametrize("kind", [str, bytes, bytearray])
def test_limit_is_inclusive(make: object, kind: type) -> None:
    text = make(MAX_DEPTH)  # type: ignore[operator]
    data = text if kind is str else kind(text.encode())
    assert jsonlimits.loads(data) == json.loads(text)
    deeper = make(MAX_DEPTH + 1)  # type: ignore[operator]
    with pytest.raises(JSONTooDeep, match="JSON nested deeper than 64 levels"):
        jsonlimits.loads(deeper if kind is str else kind(deeper.encode()))


def test_far_too_deep_is_too_deep_not_recursion_error() -> None:
    for data in (b"[" * 200_000, b'{"a":' * 50_000, arrays(100_000)):
        with pytest.raises(JSONTooDeep):
            jsonlimits.loads(data)
        with pytest.raises(JSONTooDeep):
            jsonlimits.check_depth(data)


def test_many_brackets_without_depth_parse() -> None:
    wide = "[" + ",".join(["[{}]"] * 5000) + "]"
    assert len(jsonlimits.loads(wide)) == 5000
    jsonlimits.check_depth(wide)
    # Brackets inside strings do not nest.
    assert jsonlimits.loads(json.dumps({"a": "[" * 1000})) == {"a": "[" * 1000}


def test_custom_decoder_and_invalid_json() -> None:
    decoder = json.JSONDecoder(parse_float=str)
    assert jsonlimits.loads(b'\xef\xbb\xbf{"v": 1.5}', decoder=decoder) == {"v": "1.5"}
    with pytest.raises(JSONTooDeep):
        jsonlimits.loads(arrays(MAX_DEPTH + 1).encode(), decoder=decoder)
    with pytest.raises(ValueError) as caught:
        jsonlimits.loads(b"{nope")
    assert not isinstance(caught.value, JSONTooDeep)
    jsonlimits.check_depth(b"{nope")  # syntax errors are the caller's parser's business
    jsonlimits.check_depth(b"[" * 100 + b"nope")


def test_exceeds_depth_walks_keys_sets_and_wrappers() -> None:
    value: object = 1
    for _ in range(MAX_DEPTH):
        value = (value,)
    assert not jsonlimits.exceeds_depth(value)
    assert jsonlimits.exceeds_depth({value: 1})  # a container as a key counts
    assert jsonlimits.exceeds_depth(frozenset([value]))
    tagged: object = cbor2.CBORTag(6, 0)
    for _ in range(MAX_DEPTH):
        tagged = cbor2.CBORTag(6, tagged)
    assert not jsonlimits.exceeds_depth(tagged)
    assert jsonlimits.exceeds_depth(
        [tagged], unwrap=lambda t: t.value if isinstance(t, cbor2.CBORTag) else None
    )


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_cbor_identity_payloads_have_the_same_limit(depth: int) -> None:
    assert decode_request("cbor", b"\xa1\x61a" + b"\x81" * (MAX_DEPTH - 1) + b"\x00")
    with pytest.raises(ProvisioningRejected, match="CBOR nested deeper than 64 levels"):
        decode_request("cbor", b"\xa1\x61a" + b"\x81" * depth + b"\x00")
    with pytest.raises(ProvisioningRejected, match="CBOR nested deeper than 64 levels"):
        decode_request("cbor", b"\xa1\x61a" + b"\xc6" * depth + b"\x00")
