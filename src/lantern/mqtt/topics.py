"""Topic names and topic filters (OASIS MQTT 5.0 §4.7, shared subscriptions §4.8.2).

Length and UTF-8 validity are checked by the string decoder; these functions check the
structure. They raise :class:`TopicNameInvalid` / :class:`TopicFilterInvalid`
(both :class:`ProtocolError` subclasses).
"""

from __future__ import annotations

from lantern.mqtt.errors import TopicFilterInvalid, TopicNameInvalid

__all__ = [
    "SHARE_PREFIX",
    "parse_shared",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]

SHARE_PREFIX = "$share/"


def validate_topic_name(topic: str) -> None:
    """A topic name is non-empty and has no wildcard ([MQTT-4.7.3-1], [MQTT-3.3.2-2])."""
    if not topic:
        raise TopicNameInvalid("[MQTT-4.7.3-1] topic name must be at least one character long")
    if "+" in topic or "#" in topic:
        raise TopicNameInvalid(f"[MQTT-3.3.2-2] topic name {topic!r} contains a wildcard")


def validate_topic_filter(topic_filter: str) -> None:
    """Check wildcard placement and the ``$share/<group>/<filter>`` form."""
    if not topic_filter:
        raise TopicFilterInvalid("[MQTT-4.7.3-1] topic filter must be at least one character long")
    if topic_filter.startswith(SHARE_PREFIX):
        group, sep, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
        if not group or "+" in group or "#" in group:
            raise TopicFilterInvalid(
                f"[MQTT-4.8.2-2] share name of {topic_filter!r} must be non-empty without wildcards"
            )
        if not sep or not rest:
            raise TopicFilterInvalid(
                f"[MQTT-4.8.2-1] shared subscription {topic_filter!r} has no topic filter"
            )
        topic_filter = rest
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            raise TopicFilterInvalid(
                f"[MQTT-4.7.1-1] '#' must be the whole last level in {topic_filter!r}"
            )
        if "+" in level and level != "+":
            raise TopicFilterInvalid(
                f"[MQTT-4.7.1-2] '+' must occupy a whole level in {topic_filter!r}"
            )


def parse_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split a validated filter into ``(share group, real filter)``; group is None if unshared."""
    if topic_filter.startswith(SHARE_PREFIX):
        group, _, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
        return group, rest
    return None, topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a (validated, unshared) filter matches a topic name; ``$`` topics need a
    literal first level ([MQTT-4.7.2-1]). A reference implementation, not the broker's index."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)
