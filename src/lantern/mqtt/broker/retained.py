"""Retained messages: the last retained message per topic ([MQTT-3.3.1-5]).

An empty payload deletes the topic's retained message and is not stored ([MQTT-3.3.1-6/7]).
Expired messages (Message Expiry Interval) are dropped when found. A subscription with an exact
filter is a dictionary lookup; a wildcard filter scans the stored topics (subscribing is rare
next to publishing, and the store is bounded by ``max_messages``).

Bounded in count (``max_messages``) and in bytes (``max_bytes``, payload + topic): a message
that would pass either is refused and counted; a refused replacement also forgets the topic's
previous message, so new subscribers never get a state the publisher has since replaced.
"""

from __future__ import annotations

from lantern.mqtt.broker.message import Message
from lantern.mqtt.topics import topic_matches

__all__ = ["RetainedStore"]


class RetainedStore:
    """Topic -> retained message, bounded. Over the bound, new topics are refused (counted)."""

    __slots__ = ("_messages", "bytes", "max_bytes", "max_messages", "refused")

    def __init__(self, max_messages: int = 100_000, max_bytes: int = 256 << 20) -> None:
        self._messages: dict[str, Message] = {}
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.bytes = 0  # Message.size of the stored messages
        self.refused = 0

    def __len__(self) -> int:
        return len(self._messages)

    def store(self, message: Message) -> bool:
        """Keep, replace or (empty payload) delete; False if refused because the store is full."""
        messages = self._messages
        old = messages.pop(message.topic, None)
        if old is not None:
            self.bytes -= old.size
        if not message.payload:
            return True
        if len(messages) >= self.max_messages or self.bytes + message.size > self.max_bytes:
            self.refused += 1
            return False
        messages[message.topic] = message
        self.bytes += message.size
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
                self.bytes -= message.size
            else:
                live.append(message)
        return live
