"""Per-connection authorization (implements :class:`lantern.mqtt.hooks.Authorizer`).

The authenticator computes each connection's :class:`PolicySet` at CONNECT and stores it here,
keyed by identity; the checks (called for every PUBLISH/SUBSCRIBE/delivery) are then pure
regex matches. If an entry is missing (evicted), the built-in policy of the identity's kind
applies, which never grants more than the stored one did.

Denials are counted (:attr:`GatewayAuthorizer.denied`) and logged at debug level without
payloads. The MQTT server turns a denial into SUBACK 0x87 / 0x80 (3.1.1), PUBACK 0x87 or, at
QoS 0, a silent drop.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict

from lantern.gateway.identity import (
    AnonymousIdentity,
    ClaimIdentity,
    Identity,
    ThingIdentity,
    UserIdentity,
)
from lantern.gateway.policy import (
    CLIENT_ID_VAR,
    DEVICE_POLICY,
    THING_NAME_VAR,
    Action,
    PolicySet,
    claim_policy,
)
from lantern.gateway.router import RESERVED_PREFIX
from lantern.mqtt.hooks import ClientHandle

__all__ = ["GatewayAuthorizer", "builtin_policy"]

log = logging.getLogger(__name__)

MAX_CACHED = 200_000


def builtin_policy(identity: Identity, client_id: str) -> PolicySet:
    """What an identity may do with no policy from the registry."""
    if isinstance(identity, ClaimIdentity):
        return PolicySet.from_documents([claim_policy(identity.allowed_templates)], {})
    if isinstance(identity, ThingIdentity):
        variables = {THING_NAME_VAR: identity.thing_name, CLIENT_ID_VAR: client_id}
        return PolicySet.from_documents([DEVICE_POLICY], variables)
    return PolicySet([])


class GatewayAuthorizer:
    """Checks publish, subscribe and receive against the connection's policies."""

    def __init__(self) -> None:
        self._policies: OrderedDict[object, PolicySet] = OrderedDict()
        self.denied: Counter[str] = Counter()

    def remember(self, identity: Identity, client_id: str, policies: PolicySet) -> None:
        """Store the policies computed at CONNECT for ``identity`` using ``client_id``."""
        key = (identity, client_id)
        self._policies[key] = policies
        self._policies.move_to_end(key)
        while len(self._policies) > MAX_CACHED:
            self._policies.popitem(last=False)

    def forget(self, identity: object, client_id: str) -> None:
        self._policies.pop((identity, client_id), None)

    def _check(self, client: ClientHandle, action: Action, target: str) -> bool:
        identity = client.identity
        if isinstance(identity, AnonymousIdentity):
            # Development listeners only; reserved topics still need a real identity.
            return not target.startswith(RESERVED_PREFIX)
        if not isinstance(identity, ClaimIdentity | ThingIdentity | UserIdentity):
            allowed = False
        else:
            policies = self._policies.get((identity, client.client_id))
            if policies is None:
                policies = builtin_policy(identity, client.client_id)
            allowed = policies.allows(action, target)
        if not allowed:
            self.denied[action.value] += 1
            log.debug("denied %s on %s to client %s", action.value, target, client.client_id)
        return allowed

    def may_publish(self, client: ClientHandle, topic: str) -> bool:
        return self._check(client, Action.PUBLISH, topic)

    def may_subscribe(self, client: ClientHandle, topic_filter: str) -> bool:
        return self._check(client, Action.SUBSCRIBE, topic_filter)

    def may_receive(self, client: ClientHandle, topic: str) -> bool:
        return self._check(client, Action.RECEIVE, topic)
