"""Key scopes and the destination schemes each may use (docs/push-api.md).

External collaborators may reach participants' phones only (``apns``, ``gcm``); internal services
may also send email, SMS and Slack messages.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Scope = Literal["external", "internal"]
SCOPES: Final[tuple[str, ...]] = get_args(Scope)

ALL_SCHEMES: Final = frozenset({"apns", "gcm", "mailto", "sms", "slack"})
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "external": frozenset({"apns", "gcm"}),
    "internal": ALL_SCHEMES,
}


def schemes_allowed(scope: Scope) -> frozenset[str]:
    """The canonical schemes a key of ``scope`` may send to (``fcm`` is an alias of ``gcm``)."""
    return _ALLOWED[scope]


def parse_scope(value: str) -> Scope:
    """``value`` as a :data:`Scope`; raises ValueError naming the choices."""
    if value == "external":
        return "external"
    if value == "internal":
        return "internal"
    raise ValueError(f"unknown scope {value!r}: use 'external' or 'internal'")
