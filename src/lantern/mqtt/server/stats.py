"""Plain integer counters of the MQTT server, read at scrape time (no metrics library here).

The publish path pays one dict increment per packet and one integer add per read or write;
:class:`lantern.runtime.metrics.MQTTCollector` turns them into metric families on ``/metrics``.
"""

from __future__ import annotations

from collections import Counter

from lantern.mqtt.packets import PACKET_TYPES

__all__ = ["ListenerStats", "ServerStats"]


class ListenerStats:
    """Counters of one listener: connections open now and accepted, MQTT bytes in and out."""

    __slots__ = ("accepted", "bytes_in", "bytes_out", "open")

    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self.bytes_in = 0
        self.bytes_out = 0


class ServerStats:
    """Packets in and out by type, refused CONNECTs by reason code, per-listener counters."""

    __slots__ = ("connects_refused", "listeners", "packets_in", "packets_out")

    def __init__(self) -> None:
        # Keyed by packet class, every class present: ``d[type(p)] += 1`` needs no default.
        self.packets_in: dict[type, int] = dict.fromkeys(PACKET_TYPES.values(), 0)
        self.packets_out: dict[type, int] = dict.fromkeys(PACKET_TYPES.values(), 0)
        self.connects_refused: Counter[str] = Counter()
        self.listeners: dict[str, ListenerStats] = {}

    def listener(self, name: str) -> ListenerStats:
        """The counters of listener ``name`` (created on first use)."""
        stats = self.listeners.get(name)
        if stats is None:
            stats = self.listeners[name] = ListenerStats()
        return stats
