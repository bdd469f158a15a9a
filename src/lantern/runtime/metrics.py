"""Prometheus collectors of the MQTT server and of authentication, read at scrape time.

The server and the authenticator keep plain integer counters (:class:`BrokerStats`, the
server's ``stats_*``, :class:`AuthStats`); these collectors turn them into metric families when
``/metrics`` is scraped, so the publish and CONNECT paths pay nothing for metrics. They are
registered on ``Platform.metrics``, the registry ``/metrics`` serves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lantern.gateway.authorizer import GatewayAuthorizer
from lantern.gateway.throttle import AuthStats
from lantern.mqtt.server import MQTTServer
from lantern.store import commit_stats
from lantern.store.commit_stats import Buckets, Writer

__all__ = ["AuthCollector", "GroupCommitCollector", "MQTTCollector", "PolicyCollector"]

_AUTH_FAILURE_REASONS = ("password", "certificate", "anonymous", "busy", "error")
_THROTTLE_SCOPES = ("address", "user")


def counts_by(name: str, documentation: str, label: str, counts: Mapping[str, int]) -> Metric:
    """A counter family with one sample per key of ``counts`` (in key order), labelled
    ``label``."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([key], value)
    return family


class MQTTCollector(Collector):
    """Connections, dropped messages by reason, bytes queued."""

    def __init__(self, server: MQTTServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        stats = server.broker.stats
        yield from self._listeners()
        yield from self._packets()
        sessions = server.broker.sessions.values()
        yield GaugeMetricFamily(
            "lantern_mqtt_sessions", "Sessions (connected or kept offline).", value=len(sessions)
        )
        yield GaugeMetricFamily(
            "lantern_mqtt_queued_messages",
            "QoS 1/2 messages waiting in session queues (not yet sent).",
            value=sum(len(s.queue) for s in sessions if s.queue),
        )
        yield GaugeMetricFamily(
            "lantern_mqtt_inflight_messages",
            "QoS 1/2 messages sent and not yet acknowledged.",
            value=sum(len(s.inflight) for s in sessions),
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

    def _listeners(self) -> Iterator[Metric]:
        server = self.server
        by_name = server.stats.listeners
        names = sorted(set(server.listeners) | set(by_name))
        open_now = GaugeMetricFamily(
            "lantern_mqtt_connections",
            "Open MQTT connections (TLS/WebSocket handshake done), by listener.",
            labels=["listener"],
        )
        accepted = CounterMetricFamily(
            "lantern_mqtt_connections_accepted",
            "Connections opened (TLS/WebSocket handshake done), by listener.",
            labels=["listener"],
        )
        received = CounterMetricFamily(
            "lantern_mqtt_received_bytes", "MQTT bytes received, by listener.", labels=["listener"]
        )
        sent = CounterMetricFamily(
            "lantern_mqtt_sent_bytes", "MQTT bytes sent, by listener.", labels=["listener"]
        )
        over_limit = CounterMetricFamily(
            "lantern_mqtt_connections_over_limit",
            "Connections closed at once because max_connections was reached, by listener.",
            labels=["listener"],
        )
        handshakes = CounterMetricFamily(
            "lantern_mqtt_tls_handshake_failures",
            "Refused or unfinished TLS handshakes, by listener and OpenSSL reason.",
            labels=["listener", "reason"],
        )
        for name in names:
            counts = server.stats.listener(name)
            open_now.add_metric([name], counts.open)
            accepted.add_metric([name], counts.accepted)
            received.add_metric([name], counts.bytes_in)
            sent.add_metric([name], counts.bytes_out)
            listener = server.listeners.get(name)
            over_limit.add_metric([name], getattr(listener, "refused_connections", 0))
            failures = getattr(listener, "handshake_failures", None)
            if failures is not None:
                for reason, value in sorted(failures.items()):
                    handshakes.add_metric([name, reason], value)
        yield from (open_now, accepted, received, sent, over_limit, handshakes)

    def _packets(self) -> Iterator[Metric]:
        stats = self.server.stats
        for direction, counts in (("received", stats.packets_in), ("sent", stats.packets_out)):
            family = CounterMetricFamily(
                f"lantern_mqtt_packets_{direction}",
                f"MQTT control packets {direction}, by type.",
                labels=["type"],
            )
            for kind, value in counts.items():
                family.add_metric([kind.__name__.upper()], value)
            yield family
        yield counts_by(
            "lantern_mqtt_connects_refused",
            "CONNECTs refused, by CONNACK reason (e.g. bad_user_name_or_password, banned).",
            "reason",
            stats.connects_refused,
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


class PolicyCollector(Collector):
    """Actions the gateway's policies denied, by action."""

    def __init__(self, authorizer: GatewayAuthorizer) -> None:
        self.authorizer = authorizer

    def collect(self) -> Iterator[Metric]:
        yield counts_by(
            "lantern_mqtt_policy_denied",
            "Actions a connection's policy denied (iot:Publish, iot:Subscribe, iot:Receive, ...).",
            "action",
            self.authorizer.denied,
        )


class GroupCommitCollector(Collector):
    """Every group-commit writer of the process (:mod:`lantern.store.commit_stats`): batch
    sizes, commit durations, failed batches and requests queued, labelled by writer name."""

    def collect(self) -> Iterator[Metric]:
        sizes = HistogramMetricFamily(
            "lantern_store_batch_size",
            "Requests per group-commit transaction, by writer.",
            labels=["writer"],
        )
        seconds = HistogramMetricFamily(
            "lantern_store_commit_seconds",
            "Duration of one group-commit transaction, by writer.",
            labels=["writer"],
        )
        failed = CounterMetricFamily(
            "lantern_store_failed_batches",
            "Group-commit transactions that failed (every request of the batch failed).",
            labels=["writer"],
        )
        queued = GaugeMetricFamily(
            "lantern_store_queued_requests",
            "Requests waiting for a group-commit transaction, by writer.",
            labels=["writer"],
        )
        by_name: dict[str, list[Writer]] = {}
        for writer in commit_stats.writers():
            by_name.setdefault(writer.name, []).append(writer)
        for name, group in sorted(by_name.items()):
            for family, attr in ((sizes, "batch_sizes"), (seconds, "commit_seconds")):
                hists: list[Buckets] = [getattr(w.stats, attr) for w in group]
                merged = [
                    (le, sum(h.cumulative()[i][1] for h in hists))
                    for i, (le, _) in enumerate(hists[0].cumulative())
                ]
                family.add_metric([name], merged, sum(h.sum for h in hists))
            failed.add_metric([name], sum(w.stats.failed_batches for w in group))
            queued.add_metric([name], sum(w.queued for w in group))
        yield from (sizes, seconds, failed, queued)
