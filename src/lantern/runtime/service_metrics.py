"""Prometheus collectors of the device services and the scheduler, read at scrape time.

Each service keeps plain counters where it works (no registry passed around, nothing but an
integer add on its path); these collectors export them on ``Platform.metrics`` (``/metrics``).
Every metric is listed in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lantern.ingest.files import FileLinkService
from lantern.ingest.observations import ObservationService
from lantern.jobs.device_api import JobsDeviceAPI
from lantern.jobs.timer import JobsTimer
from lantern.provisioning.service import FLOW_PATHS, ProvisioningService
from lantern.runtime.metrics import counts_by
from lantern.schedule import Scheduler
from lantern.stats import Buckets

__all__ = ["IngestCollector", "JobsCollector", "ProvisioningCollector", "SchedulerCollector"]


def _add(family: HistogramMetricFamily, labels: list[str], buckets: Buckets) -> None:
    family.add_metric(labels, buckets.cumulative(), buckets.sum)


class IngestCollector(Collector):
    """Observations accepted and rejected by reason; upload links by outcome."""

    def __init__(self, observations: ObservationService, files: FileLinkService) -> None:
        self.observations = observations
        self.files = files

    def collect(self) -> Iterator[Metric]:
        service = self.observations
        yield CounterMetricFamily(
            "lantern_ingest_observations_accepted",
            "Observations stored (committed before the PUBACK).",
            value=service.accepted,
        )
        yield counts_by(
            "lantern_ingest_observations_rejected",
            "Observations refused, by reason (the rejected reply's errorCode, or not_a_thing).",
            "reason",
            service.rejected,
        )
        links = CounterMetricFamily(
            "lantern_ingest_upload_links",
            "CreateFileUploadLink requests by outcome (accepted, or the errorCode).",
            labels=["outcome"],
        )
        links.add_metric(["accepted"], self.files.links["accepted"])
        for outcome, value in sorted(self.files.links.items()):
            if outcome != "accepted":
                links.add_metric([outcome], value)
        yield links


class ProvisioningCollector(Collector):
    """Provisioning flows by path and outcome, their latency, the RSA key pool."""

    def __init__(self, service: ProvisioningService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        flows = CounterMetricFamily(
            "lantern_provisioning_flows",
            "Identity API requests by path and outcome (accepted, or the errorCode).",
            labels=["path", "outcome"],
        )
        for path in FLOW_PATHS:
            flows.add_metric([path, "accepted"], service.flows[path, "accepted"])
        for (path, outcome), value in sorted(service.flows.items()):
            if outcome != "accepted":
                flows.add_metric([path, outcome], value)
        yield flows
        latency = HistogramMetricFamily(
            "lantern_provisioning_latency_seconds",
            "Time from a provisioning request to its reply, by path.",
            labels=["path"],
        )
        for path, buckets in service.latency.items():
            _add(latency, [path], buckets)
        yield latency
        yield GaugeMetricFamily(
            "lantern_provisioning_key_pool_keys",
            "RSA key pairs ready in the pool (0 with EC keys, which need no pool).",
            value=service.pooled_keys,
        )
        yield GaugeMetricFamily(
            "lantern_provisioning_key_pool_size",
            "RSA key pairs the pool keeps ready (provisioning.key_pool_size).",
            value=service.key_pool_size,
        )


class JobsCollector(Collector):
    """Execution changes by status, timer actions, notifications sent."""

    def __init__(self, device_api: JobsDeviceAPI, timer: JobsTimer) -> None:
        self.device_api = device_api
        self.timer = timer

    def collect(self) -> Iterator[Metric]:
        api, timer = self.device_api, self.timer
        counts = dict(api.updates.updates)
        counts["QUEUED"] = counts.get("QUEUED", 0) + timer.released
        counts["TIMED_OUT"] = counts.get("TIMED_OUT", 0) + timer.timed_out
        yield counts_by(
            "lantern_jobs_executions",
            "Job executions entering a status: QUEUED by the rollout, TIMED_OUT by the timer, "
            "others as reported by devices (StartNext, UpdateJobExecution).",
            "status",
            counts,
        )
        deployments = CounterMetricFamily(
            "lantern_jobs_deployments_finished",
            "Deployments that completed or were aborted by their abort criteria.",
            labels=["outcome"],
        )
        deployments.add_metric(["completed"], timer.completed)
        deployments.add_metric(["aborted"], timer.aborted)
        yield deployments
        notifications = CounterMetricFamily(
            "lantern_jobs_notifications",
            "jobs/notify and jobs/notify-next messages published, by kind.",
            labels=["kind"],
        )
        for kind in ("notify", "notify-next"):
            notifications.add_metric([kind], api.notifications[kind] + timer.notifications[kind])
        yield notifications


class SchedulerCollector(Collector):
    """Occurrences due, fired and missed; sends by status; lateness."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        s = self.scheduler
        yield CounterMetricFamily(
            "lantern_schedule_occurrences_due",
            "Occurrences claimed to fire (taken-over claims included).",
            value=s.due,
        )
        yield CounterMetricFamily(
            "lantern_schedule_occurrences_fired",
            "Occurrences whose sends started (within the misfire grace).",
            value=s.fired,
        )
        yield CounterMetricFamily(
            "lantern_schedule_occurrences_missed",
            "Occurrences later than schedule.misfire_grace_seconds: recorded missed, not sent.",
            value=s.missed,
        )
        yield counts_by(
            "lantern_schedule_sends",
            "Sends of scheduled notifications, by outcome (delivered, dead_token, ...).",
            "status",
            s.sends,
        )
        lateness = HistogramMetricFamily(
            "lantern_schedule_lateness_seconds",
            "How long after its scheduled time an occurrence started firing.",
            labels=[],
        )
        _add(lateness, [], s.lateness)
        yield lateness
