"""The device gateway: who a connection is, what it may do, and the ``$aws/...`` router.

Sits on :mod:`lantern.mqtt` (plug points in :mod:`lantern.mqtt.hooks`), :mod:`lantern.pki` and
:mod:`lantern.store`. Device services register handlers on :class:`ReservedTopicRouter` and never
see sockets.
"""

from __future__ import annotations

from lantern.gateway.identity import (
    AnonymousIdentity,
    ClaimIdentity,
    Identity,
    ThingIdentity,
    UserIdentity,
)
from lantern.gateway.router import (
    DeviceRequest,
    Handler,
    HandlerResult,
    Notifier,
    Reply,
    ReservedTopicRouter,
)

__all__ = [
    "AnonymousIdentity",
    "ClaimIdentity",
    "DeviceRequest",
    "Handler",
    "HandlerResult",
    "Identity",
    "Notifier",
    "Reply",
    "ReservedTopicRouter",
    "ThingIdentity",
    "UserIdentity",
]
