"""Identity API payloads: JSON or CBOR, chosen by the topic's last level (PROTOCOL.md §1.1)."""

from __future__ import annotations

import json
from typing import Any

import cbor2

from lantern.provisioning.errors import ProvisioningRejected

__all__ = ["FORMATS", "decode_request", "encode_reply"]

FORMATS = ("json", "cbor")


def decode_request(fmt: str, payload: bytes) -> dict[str, Any]:
    """The request object; an empty payload is ``{}`` (CreateKeysAndCertificate, §0-#6)."""
    if not payload.strip():
        return {}
    try:
        value = json.loads(payload) if fmt == "json" else cbor2.loads(payload)
    except (ValueError, cbor2.CBORDecodeError):
        raise ProvisioningRejected(
            400, "InvalidPayload", f"request payload is not valid {fmt.upper()}"
        ) from None
    if not isinstance(value, dict):
        raise ProvisioningRejected(400, "InvalidPayload", "request payload must be an object")
    return value


def encode_reply(fmt: str, value: dict[str, Any]) -> bytes:
    if fmt == "cbor":
        return bytes(cbor2.dumps(value))
    return json.dumps(value, separators=(",", ":")).encode()
