"""The subscription index: a trie of topic-filter levels (no scan of every subscription).

Each node is one filter level; ``+`` and ``#`` are ordinary child keys. A publish walks only the
branches its topic levels, ``+`` and ``#`` lead to. Topics starting with ``$`` are not matched by
a first-level wildcard ([MQTT-4.7.2-1]). ``a/#`` matches ``a`` itself ([MQTT-4.7.1-2]).

Shared subscriptions (``$share/<group>/<filter>``) live at the node of ``<filter>`` in a
:class:`SharedGroup`; each matching message goes to one member, round-robin, preferring members
that are connected.

Matches are cached per topic; any subscribe or unsubscribe clears the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lantern.mqtt.broker.session import Session

__all__ = ["MatchResult", "SharedGroup", "Subscription", "SubscriptionTrie"]

_MATCH_CACHE_LIMIT = 4096


class Subscription:
    """One client's subscription to one filter, with its MQTT 5 options."""

    __slots__ = (
        "group",
        "no_local",
        "qos",
        "retain_as_published",
        "retain_handling",
        "session",
        "sub_ids",
        "subscription_id",
        "topic_filter",
    )

    def __init__(
        self,
        session: Session,
        topic_filter: str,
        qos: int,
        *,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_id: int | None = None,
        group: str | None = None,
    ) -> None:
        self.session = session
        self.topic_filter = topic_filter  # without the $share/<group>/ prefix
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.subscription_id = subscription_id
        # Precomputed: the Subscription Identifier property of each delivery.
        self.sub_ids: tuple[int, ...] = () if subscription_id is None else (subscription_id,)
        self.group = group


class SharedGroup:
    """Members of one ``$share/<group>/<filter>``; messages go round-robin."""

    __slots__ = ("members", "name", "next_index")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: list[Subscription] = []
        self.next_index = 0

    def pick(self) -> Subscription:
        """The next member in turn, skipping offline members while any member is online."""
        members = self.members
        n = len(members)
        start = self.next_index
        for step in range(n):
            sub = members[(start + step) % n]
            if sub.session.connection is not None:
                self.next_index = (start + step + 1) % n
                return sub
        self.next_index = (start + 1) % n
        return members[start % n]


class _Node:
    __slots__ = ("children", "shared", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subs: dict[str, Subscription] = {}  # client id -> subscription
        self.shared: dict[str, SharedGroup] = {}

    def empty(self) -> bool:
        return not (self.children or self.subs or self.shared)


MatchResult = tuple[list[dict[str, Subscription]], list[SharedGroup]]
"""Per matching node, its plain subscriptions (client id -> subscription); matching groups."""


class SubscriptionTrie:
    """Topic filters -> subscriptions. Keys are client ids: one subscription per client per
    (group, filter); subscribing again replaces it ([MQTT-3.8.4-3])."""

    __slots__ = ("_cache", "_root", "count")

    def __init__(self) -> None:
        self._root = _Node()
        self._cache: dict[str, MatchResult] = {}
        self.count = 0

    def add(self, sub: Subscription) -> bool:
        """Insert or replace; True if the client had no subscription to this filter before."""
        node = self._root
        for level in sub.topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        self._cache.clear()
        client_id = sub.session.client_id
        if sub.group is None:
            new = client_id not in node.subs
            node.subs[client_id] = sub
        else:
            group = node.shared.get(sub.group)
            if group is None:
                group = node.shared[sub.group] = SharedGroup(sub.group)
            for i, member in enumerate(group.members):
                if member.session.client_id == client_id:
                    group.members[i] = sub
                    return False
            group.members.append(sub)
            new = True
        if new:
            self.count += 1
        return new

    def remove(self, client_id: str, topic_filter: str, group: str | None) -> bool:
        """Remove one client's subscription; True if it existed. Prunes empty nodes."""
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if group is None:
            if node.subs.pop(client_id, None) is None:
                return False
        else:
            shared = node.shared.get(group)
            if shared is None:
                return False
            before = len(shared.members)
            shared.members = [m for m in shared.members if m.session.client_id != client_id]
            if len(shared.members) == before:
                return False
            if not shared.members:
                del node.shared[group]
        self.count -= 1
        self._cache.clear()
        for parent, level in reversed(path):
            if not node.empty():
                break
            del parent.children[level]
            node = parent
        return True

    def shared_group(self, topic_filter: str, name: str) -> SharedGroup | None:
        """The shared group ``name`` of exactly ``topic_filter``, if it has members here."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.shared.get(name)

    def match(self, topic: str) -> MatchResult:
        """Every node's subscriptions and every shared group whose filter matches ``topic``."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        plain: list[dict[str, Subscription]] = []
        groups: list[SharedGroup] = []
        levels = topic.split("/")
        last = len(levels)
        dollar = topic.startswith("$")
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            children = node.children
            if i == last:
                if node.subs:
                    plain.append(node.subs)
                if node.shared:
                    groups.extend(node.shared.values())
                hash_node = children.get("#")
                if hash_node is not None:
                    _collect(hash_node, plain, groups)
                continue
            if not children:
                continue
            if i or not dollar:
                hash_node = children.get("#")
                if hash_node is not None:
                    _collect(hash_node, plain, groups)
                plus = children.get("+")
                if plus is not None:
                    stack.append((plus, i + 1))
            child = children.get(levels[i])
            if child is not None:
                stack.append((child, i + 1))
        result = (plain, groups)
        if len(self._cache) >= _MATCH_CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = result
        return result


def _collect(node: _Node, plain: list[dict[str, Subscription]], groups: list[SharedGroup]) -> None:
    if node.subs:
        plain.append(node.subs)
    if node.shared:
        groups.extend(node.shared.values())
