"""Per-connection authorization (implements :class:`lantern.mqtt.hooks.Authorizer`).

The authenticator computes each connection's :class:`PolicySet` at CONNECT and stores it here,
keyed by identity; the checks (called for every PUBLISH/SUBSCRIBE/delivery) are then pure
regex matches. If an entry is missing (evicted), the built-in policy of the identity's kind
applies, which never grants more than the stored one did.

Decisions are cached per (connection's :class:`PolicySet`, action, topic) in one bounded dict:
a device publishes to the same few topics over and over, and a decision is a pure function of
those three. Policies change only through :meth:`GatewayAuthorizer.remember` /
:meth:`~GatewayAuthorizer.forget` (at CONNECT: a policy attached or edited in the registry
applies from the device's next connection, as before), and both install a different
``PolicySet`` object, so no cached decision of the old one is ever consulted again; the stale
entries go when the cache is next cleared.

Anonymous clients (listeners in ``provisioning.anonymous_listeners``) never touch reserved
``$aws/...`` topics. Without an anonymous policy they may use every other topic except the
devices' (``<thing>`` and ``<thing>/...`` for every registered thing, from
:class:`~lantern.gateway.things.ThingNames`; not cached, as the set grows). With one
(``anonymous_policy=True``), the policy the authenticator compiled for the connection decides,
exactly as for an MQTT user; a connection whose policy is missing may do nothing.

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
from lantern.gateway.things import ThingNames
from lantern.mqtt.hooks import ClientHandle

__all__ = ["GatewayAuthorizer", "builtin_policy"]

log = logging.getLogger(__name__)

MAX_CACHED = 200_000
# Decisions cached at most (then all forgotten at once), and only for targets up to this long,
# so a client publishing to endless distinct or huge topics cannot grow memory without bound.
MAX_DECISIONS = 50_000
MAX_CACHED_TARGET = 256

_KNOWN = (ThingIdentity, ClaimIdentity, UserIdentity, AnonymousIdentity)  # most frequent first
_PUBLISH = Action.PUBLISH  # module constants: Enum class attribute lookups are slow
_SUBSCRIBE = Action.SUBSCRIBE
_RECEIVE = Action.RECEIVE


def builtin_policy(identity: Identity, client_id: str) -> PolicySet:
    """What an identity may do with no policy from the registry."""
    if isinstance(identity, ClaimIdentity):
        return PolicySet.from_documents([claim_policy(identity.allowed_templates)], {})
    if isinstance(identity, ThingIdentity):
        variables = {THING_NAME_VAR: identity.thing_name, CLIENT_ID_VAR: client_id}
        return PolicySet.from_documents([DEVICE_POLICY], variables)
    return PolicySet([])  # users and anonymous clients: only what a stored policy grants


class GatewayAuthorizer:
    """Checks publish, subscribe and receive against the connection's policies.

    ``thing_names``: the registered things whose topics anonymous clients may not use (none
    when not given); ``anonymous_policy``: anonymous clients get the policy the authenticator
    remembered for them instead of the default access.
    """

    def __init__(
        self, thing_names: ThingNames | None = None, *, anonymous_policy: bool = False
    ) -> None:
        self.thing_names = thing_names
        self.anonymous_policy = anonymous_policy
        self._policies: OrderedDict[object, PolicySet] = OrderedDict()
        self._decisions: dict[tuple[PolicySet, Action, str], bool] = {}
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
        if isinstance(identity, AnonymousIdentity) and (
            not self.anonymous_policy or target.startswith(RESERVED_PREFIX)
        ):
            allowed = self._anonymous_default(target)
        elif not isinstance(identity, _KNOWN):
            allowed = False
        else:
            client_id = client.client_id
            policies = self._policies.get((identity, client_id))
            if policies is None:
                # Compile the fallback once, not on every message of this connection.
                policies = builtin_policy(identity, client_id)
                self.remember(identity, client_id, policies)
            key = (policies, action, target)
            cached = self._decisions.get(key)
            if cached is not None:
                allowed = cached
            else:
                allowed = policies.allows(action, target)
                if len(target) <= MAX_CACHED_TARGET:
                    if len(self._decisions) >= MAX_DECISIONS:
                        self._decisions.clear()
                    self._decisions[key] = allowed
        if not allowed:
            self.denied[action.value] += 1
            log.debug("denied %s on %s to client %s", action.value, target, client.client_id)
        return allowed

    def _anonymous_default(self, target: str) -> bool:
        """Anonymous access without a policy: anything but reserved topics and devices' topics
        (a filter's first level; a wildcard there is allowed, its deliveries are checked)."""
        if target.startswith(RESERVED_PREFIX):
            return False
        names = self.thing_names
        return names is None or not names.covers(target)

    def may_publish(self, client: ClientHandle, topic: str) -> bool:
        return self._check(client, _PUBLISH, topic)

    def may_subscribe(self, client: ClientHandle, topic_filter: str) -> bool:
        return self._check(client, _SUBSCRIBE, topic_filter)

    def may_receive(self, client: ClientHandle, topic: str) -> bool:
        return self._check(client, _RECEIVE, topic)
