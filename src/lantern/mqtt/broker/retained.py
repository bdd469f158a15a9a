"""Retained messages: the last retained message per topic ([MQTT-3.3.1-5]).

An empty payload deletes the topic's retained message and is not stored ([MQTT-3.3.1-6/7]).
Expired messages (Message Expiry Interval) are dropped when found. A subscription with an exact
filter is a dictionary lookup; a wildcard filter scans the stored topics (subscribing is rare
next to publishing, and the store is bounded by ``max_messages``).
"""

from __future__ import annotations

from lantern.mqtt.broker.message import Message
from lantern.mqtt.topics import topic_matches

__all__ = ["RetainedStore"]


class RetainedStore:
    """Topic -> retained message, bounded. Over the bound, new topics are refused (counted)."""

    __slots__ = ("_messages", "max_messages", "refused")

    def __init__(self, max_messages: int = 100_000) -> None:
        self._messages: dict[str, Message] = {}
        self.max_messages = max_messages
        self.refused = 0

    def __len__(self) -> int:
        return len(self._messages)

    def store(self, message: Message) -> bool:
        """Keep, replace or (empty payload) delete; False if refused because the store is full."""
        if not message.payload:
            self._messages.pop(message.topic, None)
            return True
        if message.topic not in self._messages and len(self._messages) >= self.max_messages:
            self.refused += 1
            return False
        self._messages[message.topic] = message
        return True

    def get(self, topic: str) -> Message | None:
        return self._messages.get(topic)

    def matching(self, topic_filter: str, now: float) -> list[Message]:
        """Unexpired retained messages whose topic matches an (unshared) filter."""
        if "+" not in topic_filter and "#" not in topic_filter:
            found = self._messages.get(topic_filter)
            candidates = [] if found is None else [found]
        else:
            candidates = [m for t, m in self._messages.items() if topic_matches(topic_filter, t)]
        live = []
        for message in candidates:
            if message.expired(now):
                del self._messages[message.topic]
            else:
                live.append(message)
        return live
