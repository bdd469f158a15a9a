"""The scheduler's counters on /metrics (lantern_schedule_*): due, fired, missed, sends by
status, lateness; read through the runtime's collector as Prometheus scrapes them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from lantern.runtime.service_metrics import SchedulerCollector
from lantern.schedule import Scheduler

from .conftest import Harness, Key, at, body

KEY = Key("key_a")
NY = "America/New_York"


def scrape(scheduler: Scheduler) -> str:
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(scheduler))
    return generate_latest(registry).decode()


async def test_due_fired_missed_sends_and_lateness_are_exported(harness: Harness) -> None:
    h = harness
    await h.service.create(KEY, body(repeat="hourly", times=["00:00"]))  # created 07:00 NY
    h.clock.set(at(NY, 2025, 1, 6, 10, 0) + 120)  # 08:00, 09:00 missed; 10:00 2 min late
    s = h.scheduler()
    assert await s.run_once() == 1
    text = scrape(s)
    assert "lantern_schedule_occurrences_due_total 1.0" in text
    assert "lantern_schedule_occurrences_fired_total 1.0" in text
    assert "lantern_schedule_occurrences_missed_total 2.0" in text
    assert 'lantern_schedule_sends_total{status="delivered"} 1.0' in text
    assert 'lantern_schedule_lateness_seconds_bucket{le="60.0"} 0.0' in text
    assert 'lantern_schedule_lateness_seconds_bucket{le="300.0"} 1.0' in text
    assert "lantern_schedule_lateness_seconds_sum 120.0" in text
