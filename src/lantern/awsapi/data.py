"""iot-data beside the shadow routes: Publish (HTTP into the MQTT broker, QoS 0 or 1, retain),
GetRetainedMessage, ListRetainedMessages.

The message is published as the server: subscribers' policies apply (``iot:Receive``) as for
any message. Topics starting with ``$`` (AWS's reserved topics) are refused: Lantern's reserved
topics are served over MQTT. Retained messages live in the broker's memory, as MQTT keeps them;
their ``lastModifiedTime`` is not kept, so it is not answered.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

from lantern.awsapi.common import invalid, not_found, page
from lantern.awsapi.service import AwsService, Call

__all__ = ["Broker", "register"]

MAX_PAYLOAD = 128 * 1024


class Broker(Protocol):
    """What the handlers need of the MQTT server."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...

    def retained(self, topic: str) -> tuple[bytes, int] | None:
        """The retained message's payload and QoS on ``topic``."""
        ...

    def retained_topics(self) -> list[tuple[str, int, int]]:
        """``(topic, payload size, qos)`` of every retained message, by topic."""
        ...


def _topic(topic: str) -> str:
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise invalid(f"topic {topic!r} is not a topic name (no wildcards, not empty)")
    if topic.startswith("$"):
        raise invalid(f"topic {topic}: reserved topics ($...) are not published over HTTP")
    return topic


def register(data: AwsService, broker: Broker) -> None:
    @data.operation("Publish")
    async def publish(call: Call) -> dict[str, Any]:
        topic = _topic(call.params["topic"])
        qos = call.params.get("qos", 0)
        if qos not in (0, 1):
            raise invalid("qos must be 0 or 1")
        payload: bytes = call.params.get("payload", b"")
        if len(payload) > MAX_PAYLOAD:
            raise data.error("RequestEntityTooLargeException", "The payload exceeds 128 KB")
        broker.publish(topic, payload, qos=qos, retain=bool(call.params.get("retain", False)))
        return {}

    @data.operation("GetRetainedMessage")
    async def get_retained_message(call: Call) -> dict[str, Any]:
        topic = _topic(call.params["topic"])
        found = broker.retained(topic)
        if found is None:
            raise not_found(f"No retained message on topic {topic}")
        payload, qos = found
        return {"topic": topic, "payload": base64.b64encode(payload).decode(), "qos": qos}

    @data.operation("ListRetainedMessages")
    async def list_retained_messages(call: Call) -> dict[str, Any]:
        topics = broker.retained_topics()
        chunk, token = page(
            topics, call.params.get("nextToken"), call.params.get("maxResults"), limit=200
        )
        return {
            "retainedTopics": [{"topic": t, "payloadSize": s, "qos": q} for t, s, q in chunk],
            "nextToken": token,
        }
