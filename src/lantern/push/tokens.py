"""``device_token`` parsing: ``<scheme>:<address>`` or a legacy unprefixed token + ``push_type``."""

from __future__ import annotations

from typing import Final

from lantern.push.errors import PushRequestInvalid

# Prefixes of docs/push-api.md, with the names legacy callers used in ``push_type``.
SCHEME_ALIASES: Final[dict[str, str]] = {
    "apns": "apns",
    "gcm": "gcm",
    "fcm": "gcm",
    "mailto": "mailto",
    "sms": "sms",
    "slack": "slack",
}
_PUSH_TYPE_ALIASES: Final[dict[str, str]] = {
    **SCHEME_ALIASES,
    "ios": "apns",
    "android": "gcm",
    "email": "mailto",
}


def parse_device_token(device_token: str, push_type: str | None = None) -> tuple[str, str]:
    """Split into (canonical scheme, address). The prefix wins over ``push_type``.

    Only the first colon separates: FCM registration tokens contain colons themselves.
    """
    if not device_token:
        raise PushRequestInvalid("device_token", "must not be empty")
    prefix, sep, rest = device_token.partition(":")
    scheme = SCHEME_ALIASES.get(prefix.lower()) if sep else None
    if scheme is not None:
        address = rest
    elif push_type is not None:
        scheme = _PUSH_TYPE_ALIASES.get(push_type.lower())
        if scheme is None:
            raise PushRequestInvalid(
                "push_type",
                f"unknown push_type {push_type!r}; use one of {', '.join(sorted(SCHEME_ALIASES))}",
            )
        address = device_token
    else:
        raise PushRequestInvalid(
            "device_token",
            "must be '<scheme>:<address>' with scheme apns, gcm (or fcm), mailto, sms or slack",
        )
    if not address:
        raise PushRequestInvalid("device_token", f"the {scheme} address after the prefix is empty")
    return scheme, address
