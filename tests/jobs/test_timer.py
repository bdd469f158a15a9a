"""Rollout pacing, timeouts, abort criteria, cancel and completion on a manual clock."""

from __future__ import annotations

from jobs.kit import Kit
from lantern.jobs.deployments import AbortCriterion
from lantern.jobs.queries import ExecStatus, JobStatus


async def statuses(kit: Kit, job: str) -> dict[str, str]:
    deployment = await kit.queries.deployment(job)
    return {e.thing_name: e.status.value for e in deployment.executions}


async def test_rollout_queues_at_most_max_per_minute(kit: Kit) -> None:
    names = [f"dev{i}" for i in range(5)]
    await kit.add_things(*names)
    job = await kit.deploy(*names, tick=False, max_per_minute=2)
    assert (await kit.timer.tick()).released == {job: 2}
    notified = {t.split("/")[2] for t, _ in kit.recorder.take() if t.endswith("notify-next")}
    assert notified == {"dev0", "dev1"}
    kit.clock.advance(59)
    assert (await kit.timer.tick()).released == {}
    assert (await kit.call("dev2", "get")).body["queuedJobs"] == []
    kit.clock.advance(1)
    assert (await kit.timer.tick()).released == {job: 2}
    kit.clock.advance(60)
    assert (await kit.timer.tick()).released == {job: 1}
    assert set((await statuses(kit, job)).values()) == {"QUEUED"}
    kit.recorder.take()

    for name in names:
        await kit.call(name, f"{job}/update", {"status": "SUCCEEDED"})
    report = await kit.timer.tick()
    assert report.completed == [job]
    assert (await kit.queries.deployment(job)).job.status is JobStatus.COMPLETED


async def test_without_rate_everything_is_queued_at_once(kit: Kit) -> None:
    names = [f"dev{i}" for i in range(30)]
    await kit.add_things(*names)
    job = await kit.deploy(*names, tick=False)
    assert (await kit.timer.tick()).released == {job: 30}
    assert len([t for t, _ in kit.recorder.take() if t.endswith("/notify-next")]) == 30


async def test_in_progress_timeout(kit: Kit) -> None:
    await kit.add_things("dev1")
    job = await kit.deploy("dev1", in_progress_timeout_minutes=1)
    kit.clock.advance(600)  # queued time does not count
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    kit.recorder.take()
    kit.clock.advance(59)
    assert (await kit.timer.tick()).timed_out == []
    kit.clock.advance(1)
    assert (await kit.timer.tick()).timed_out == [(job, "dev1")]
    published = kit.recorder.take()
    assert [t.rsplit("/", 1)[1] for t, _ in published] == ["notify", "notify-next"]
    assert published[0][1]["jobs"] == {}
    u = await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED", "clientToken": "t"})
    assert u.body["code"] == "InvalidStateTransition"
    assert u.body["executionState"]["status"] == "TIMED_OUT"
    await kit.timer.tick()
    assert (await kit.queries.deployment(job)).job.status is JobStatus.COMPLETED


async def test_step_timeout_set_replaced_and_cleared(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    job = await kit.deploy("dev1", "dev2")
    await kit.call("dev1", "start-next", {"stepTimeoutInMinutes": 1})
    await kit.call("dev2", f"{job}/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1})
    kit.clock.advance(50)
    # dev2 replaces its step timer with a new one and then clears it.
    await kit.call("dev2", f"{job}/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 2})
    await kit.call("dev2", f"{job}/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1})
    kit.clock.advance(10)
    assert (await kit.timer.tick()).timed_out == [(job, "dev1")]
    kit.clock.advance(3600)
    assert (await kit.timer.tick()).timed_out == []
    assert await statuses(kit, job) == {"dev1": "TIMED_OUT", "dev2": "IN_PROGRESS"}


async def test_step_timer_never_outlives_the_in_progress_timer(kit: Kit) -> None:
    await kit.add_things("dev1")
    job = await kit.deploy("dev1", in_progress_timeout_minutes=2)
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 30})
    kit.clock.advance(120)
    assert (await kit.timer.tick()).timed_out == [(job, "dev1")]


async def test_abort_cancels_queued_and_planned_but_not_in_progress(kit: Kit) -> None:
    names = [f"dev{i}" for i in range(8)]
    await kit.add_things(*names)
    job = await kit.deploy(*names, max_per_minute=3, abort=[AbortCriterion("ALL", 50.0, 2)])
    assert await statuses(kit, job) == {
        **{n: "QUEUED" for n in names[:3]},
        **{n: "PLANNED" for n in names[3:]},
    }
    await kit.call("dev0", f"{job}/update", {"status": "FAILED"})
    assert (await kit.timer.tick()).aborted == []  # 1 executed < minimum of 2
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    kit.recorder.take()
    await kit.call("dev2", f"{job}/update", {"status": "REJECTED"})
    kit.clock.advance(60)
    report = await kit.timer.tick()
    assert report.aborted == [job] and report.released == {}
    deployment = await kit.queries.deployment(job)
    assert deployment.job.status is JobStatus.CANCELED
    assert deployment.job.reason and "2 of 2" in deployment.job.reason
    assert deployment.counts == {
        ExecStatus.FAILED: 1,
        ExecStatus.REJECTED: 1,
        ExecStatus.IN_PROGRESS: 1,
        ExecStatus.CANCELED: 5,
    }
    # Only things that had seen the job are told; never-queued ones hear nothing.
    notified = {t.split("/")[2] for t, _ in kit.recorder.take()}
    assert notified == set()  # dev1 is still IN_PROGRESS; dev3-7 were never notified
    assert (await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED"})).accepted


async def test_abort_threshold_not_met_keeps_rolling(kit: Kit) -> None:
    names = [f"dev{i}" for i in range(4)]
    await kit.add_things(*names)
    job = await kit.deploy(*names, max_per_minute=2, abort=[AbortCriterion("FAILED", 60.0, 2)])
    await kit.call("dev0", f"{job}/update", {"status": "FAILED"})
    await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED"})
    kit.clock.advance(60)
    report = await kit.timer.tick()
    assert report.aborted == [] and report.released == {job: 2}


async def test_abort_counts_only_its_failure_type(kit: Kit) -> None:
    names = [f"dev{i}" for i in range(3)]
    await kit.add_things(*names)
    job = await kit.deploy(*names, max_per_minute=2, abort=[AbortCriterion("TIMED_OUT", 50, 2)])
    await kit.call("dev0", f"{job}/update", {"status": "FAILED"})
    await kit.call("dev1", f"{job}/update", {"status": "REJECTED"})
    assert (await kit.timer.tick()).aborted == []


async def test_cancel_without_force_leaves_in_progress_running(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    job = await kit.deploy("dev1", "dev2")
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    kit.recorder.take()
    canceled = await kit.deployments.cancel(job)
    assert canceled == ["dev2"]
    await kit.timer.tick()  # the server publishes what any process changed
    published = kit.recorder.take()
    assert {t for t, _ in published} == {
        "$aws/things/dev2/jobs/notify",
        "$aws/things/dev2/jobs/notify-next",
    }
    assert (await kit.call("dev2", f"{job}/get", {"clientToken": "t"})).body["code"] == (
        "TerminalStateReached"
    )
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["status"] == "IN_PROGRESS"
    assert (await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED"})).accepted
    await kit.timer.tick()
    assert (await kit.queries.deployment(job)).job.status is JobStatus.CANCELED


async def test_cancel_with_force_cancels_in_progress(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    job = await kit.deploy("dev1", "dev2")
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    kit.recorder.take()
    assert sorted(await kit.deployments.cancel(job, force=True)) == ["dev1", "dev2"]
    await kit.timer.tick()
    assert {t.split("/")[2] for t, _ in kit.recorder.take()} == {"dev1", "dev2"}
    u = await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED", "clientToken": "t"})
    assert u.body["code"] == "InvalidStateTransition"
    assert u.body["executionState"]["status"] == "CANCELED"


async def test_cancel_escalates_to_force_once_and_refuses_after(kit: Kit) -> None:
    from lantern.jobs.errors import JobsConflict, JobsNotFound

    await kit.add_things("dev1")
    job = await kit.deploy("dev1")
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    await kit.deployments.cancel(job)
    try:
        await kit.deployments.cancel(job)
        raise AssertionError("second cancel accepted")
    except JobsConflict as exc:
        assert "force" in str(exc)
    assert await kit.deployments.cancel(job, force=True) == ["dev1"]
    for force in (False, True):
        try:
            await kit.deployments.cancel(job, force=force)
            raise AssertionError("cancel of a force-canceled job accepted")
        except JobsConflict:
            pass
    try:
        await kit.deployments.cancel("missing")
        raise AssertionError("cancel of a missing job accepted")
    except JobsNotFound:
        pass
