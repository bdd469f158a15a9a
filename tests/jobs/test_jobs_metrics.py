"""The jobs counters on /metrics (lantern_jobs_*): executions by status, deployments finished,
notifications sent; read through the runtime's collector as Prometheus scrapes them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from jobs.kit import Kit
from lantern.runtime.service_metrics import JobsCollector


def scrape(kit: Kit) -> str:
    registry = CollectorRegistry()
    registry.register(JobsCollector(kit.api, kit.timer))
    return generate_latest(registry).decode()


async def test_executions_deployments_and_notifications_are_exported(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    job = await kit.deploy("dev1", "dev2")  # the timer queues both
    await kit.call("dev1", "start-next", {})
    await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED"})
    await kit.call("dev2", f"{job}/update", {"status": "FAILED"})
    await kit.timer.tick()
    text = scrape(kit)
    assert 'lantern_jobs_executions_total{status="QUEUED"} 2.0' in text
    assert 'lantern_jobs_executions_total{status="IN_PROGRESS"} 1.0' in text
    assert 'lantern_jobs_executions_total{status="SUCCEEDED"} 1.0' in text
    assert 'lantern_jobs_executions_total{status="FAILED"} 1.0' in text
    assert 'lantern_jobs_deployments_finished_total{outcome="completed"} 1.0' in text
    assert 'lantern_jobs_deployments_finished_total{outcome="aborted"} 0.0' in text
    # Each thing gets notify and notify-next when its execution is queued (timer), and again
    # when it ends (its pending list and head change; sent with the device's update).
    sent = {
        kind: float(line.rsplit(" ", 1)[1])
        for kind in ("notify", "notify-next")
        for line in text.splitlines()
        if line.startswith(f'lantern_jobs_notifications_total{{kind="{kind}"}}')
    }
    assert sent == {"notify": 4.0, "notify-next": 4.0}
