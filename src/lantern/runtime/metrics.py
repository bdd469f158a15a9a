"""Prometheus collectors of the MQTT server and of authentication, read at scrape time.

The server and the authenticator keep plain integer counters (:class:`BrokerStats`, the
server's ``stats_*``, :class:`AuthStats`); these collectors turn them into metric families when
``/metrics`` is scraped, so the publish and CONNECT paths pay nothing for metrics. They are
registered on ``Platform.metrics``, the registry ``/metrics`` serves.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lantern.gateway.throttle import AuthStats
from lantern.mqtt.server import MQTTServer

__all__ = ["AuthCollector", "MQTTCollector"]

_AUTH_FAILURE_REASONS = ("password", "certificate", "anonymous", "busy", "error")
_THROTTLE_SCOPES = ("address", "user")


class MQTTCollector(Collector):
    """Connections, dropped messages by reason, bytes queued."""

    def __init__(self, server: MQTTServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        stats = server.broker.stats
        yield GaugeMetricFamily(
            "lantern_mqtt_connections", "Open MQTT connections.", value=len(server.handlers)
        )
        dropped = CounterMetricFamily(
            "lantern_mqtt_messages_dropped",
            "Messages not delivered to a subscriber, by reason.",
            labels=["reason"],
        )
        for reason, value in (
            ("queue_full", stats.dropped_queue_full),
            ("session_bytes", stats.dropped_session_bytes),
            ("total_bytes", stats.dropped_total_bytes),
            ("qos0_offline", stats.dropped_qos0_offline),
            ("qos0_slow_reader", server.stats_qos0_dropped_slow),
            ("expired", stats.dropped_expired),
            ("not_authorized", stats.dropped_not_authorized),
        ):
            dropped.add_metric([reason], value)
        yield dropped
        yield GaugeMetricFamily(
            "lantern_mqtt_queued_bytes",
            "Bytes (payload + topic) of QoS 1/2 messages in session queues.",
            value=stats.queued_bytes,
        )
        retained = server.broker.retained
        yield GaugeMetricFamily(
            "lantern_mqtt_retained_bytes",
            "Bytes (payload + topic) of retained messages.",
            value=retained.bytes,
        )
        yield CounterMetricFamily(
            "lantern_mqtt_retained_refused",
            "Retained messages not stored: over max_retained_messages or max_retained_bytes.",
            value=retained.refused,
        )
        yield CounterMetricFamily(
            "lantern_mqtt_publish_denied",
            "Inbound PUBLISHes refused by policy.",
            value=server.stats_publish_denied,
        )


class AuthCollector(Collector):
    """Refused MQTT authentications by reason, and attempts the throttle refused."""

    def __init__(self, stats: AuthStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "lantern_mqtt_auth_failures",
            "Refused MQTT authentications (not counting throttled ones), by reason.",
            labels=["reason"],
        )
        for reason in _AUTH_FAILURE_REASONS:
            failures.add_metric([reason], self.stats.failures[reason])
        yield failures
        throttled = CounterMetricFamily(
            "lantern_mqtt_auth_throttled",
            "MQTT authentications refused at once (0x8A) after too many failures, by the "
            "throttle (source address, or user name / certificate) that refused them.",
            labels=["scope"],
        )
        for scope in _THROTTLE_SCOPES:
            throttled.add_metric([scope], self.stats.throttled[scope])
        yield throttled
