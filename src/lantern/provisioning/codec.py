"""Identity API payloads: JSON or CBOR, chosen by the topic's last level (docs/device-topics.md)."""

from __future__ import annotations

import json
from typing import Any

import cbor2

from lantern import jsonlimits
from lantern.jsonlimits import JSONTooDeep
from lantern.provisioning.errors import ProvisioningRejected

__all__ = ["FORMATS", "decode_request", "encode_reply"]

FORMATS = ("json", "cbor")


def decode_request(fmt: str, payload: bytes) -> dict[str, Any]:
    """The request object; an empty payload is ``{}`` (CreateKeysAndCertificate, as AWS)."""
    if not payload.strip():
        return {}
    try:
        value = jsonlimits.loads(payload) if fmt == "json" else _cbor_loads(payload)
    except JSONTooDeep as exc:
        raise ProvisioningRejected(400, "InvalidPayload", f"request payload is {exc}") from None
    except (ValueError, cbor2.CBORDecodeError):
        raise ProvisioningRejected(
            400, "InvalidPayload", f"request payload is not valid {fmt.upper()}"
        ) from None
    if not isinstance(value, dict):
        raise ProvisioningRejected(400, "InvalidPayload", "request payload must be an object")
    return value


def _cbor_loads(payload: bytes) -> Any:
    """``cbor2.loads`` with :func:`jsonlimits.loads`'s nesting limit (tags count as a level)."""
    try:
        value = cbor2.loads(payload)
    except RecursionError:
        raise JSONTooDeep(what="CBOR") from None
    except cbor2.CBORDecodeError as exc:
        if "depth" in str(exc):  # cbor2's own (higher) nesting limit
            raise JSONTooDeep(what="CBOR") from None
        raise
    if jsonlimits.exceeds_depth(value, unwrap=_tagged):
        raise JSONTooDeep(what="CBOR")
    return value


def _tagged(item: Any) -> Any:
    return item.value if isinstance(item, cbor2.CBORTag) else None


def encode_reply(fmt: str, value: dict[str, Any]) -> bytes:
    if fmt == "cbor":
        return bytes(cbor2.dumps(value))
    return json.dumps(value, separators=(",", ":")).encode()
