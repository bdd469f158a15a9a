"""Jobs events on a manual clock: the paths the e2e test (tests/awsapi/test_events_jobs.py) does
not reach in real time — FAILED / REJECTED from devices, TIMED_OUT and abort from the timer."""

from __future__ import annotations

from typing import Any

from jobs.kit import Kit
from lantern.jobs.deployments import AbortCriterion
from lantern.jobs.events import JobEvents


def events(kit: Kit) -> list[tuple[str, dict[str, Any]]]:
    return [(t, p) for t, p in kit.recorder.take() if t.startswith("$aws/events/")]


def enable(kit: Kit) -> None:
    publisher = JobEvents(kit.recorder, "123456789012", "eu-north-1")
    kit.api.events = publisher
    kit.timer.events = publisher
    kit.jobs.events = publisher


async def test_failed_rejected_and_timed_out_executions(kit: Kit) -> None:
    enable(kit)
    await kit.add_things("d1", "d2", "d3")
    job = await kit.deploy("d1", "d2", "d3", in_progress_timeout_minutes=1)
    kit.recorder.take()
    await kit.call("d1", f"{job}/update", {"status": "FAILED", "statusDetails": {"why": "disk"}})
    await kit.call("d2", f"{job}/update", {"status": "REJECTED"})
    await kit.call("d3", f"{job}/update", {"status": "IN_PROGRESS"})
    got = events(kit)
    assert [t for t, _ in got] == [
        f"$aws/events/jobExecution/{job}/failed",
        f"$aws/events/jobExecution/{job}/rejected",
    ]
    assert got[0][1]["status"] == "FAILED"
    assert got[0][1]["statusDetails"] == {"why": "disk"}
    assert got[0][1]["thingArn"] == "arn:aws:iot:eu-north-1:123456789012:thing/d1"
    assert "statusDetails" not in got[1][1]
    kit.clock.advance(61)
    await kit.timer.tick()  # d3 times out; the job has no unfinished execution left
    await kit.timer.tick()
    got = events(kit)
    assert [t for t, _ in got] == [
        f"$aws/events/jobExecution/{job}/timed_out",
        f"$aws/events/job/{job}/completed",
    ]
    details = got[1][1]["jobProcessDetails"]
    assert (details["numberOfFailedThings"], details["numberOfRejectedThings"]) == (1, 1)
    assert details["numberOfTimedOutThings"] == 1
    # A later, refused update (terminal already) publishes nothing.
    assert not (await kit.call("d1", f"{job}/update", {"status": "SUCCEEDED"})).accepted
    assert events(kit) == []


async def test_abort_cancels_the_job_and_its_queued_executions(kit: Kit) -> None:
    enable(kit)
    await kit.add_things("a1", "a2", "a3")
    job = await kit.deploy(
        "a1",
        "a2",
        "a3",
        abort=[AbortCriterion("FAILED", 50.0, 1)],
    )
    kit.recorder.take()
    await kit.call("a1", f"{job}/update", {"status": "FAILED"})
    await kit.timer.tick()
    topics = sorted(t for t, _ in events(kit))
    assert topics == sorted(
        [
            f"$aws/events/jobExecution/{job}/failed",
            f"$aws/events/jobExecution/{job}/canceled",
            f"$aws/events/jobExecution/{job}/canceled",
            f"$aws/events/job/{job}/canceled",
        ]
    )


async def test_nothing_without_a_publisher(kit: Kit) -> None:
    await kit.add_things("q1")
    job = await kit.deploy("q1")
    await kit.call("q1", f"{job}/update", {"status": "SUCCEEDED"})
    await kit.timer.tick()
    assert events(kit) == []


async def test_cancel_and_delete_of_one_execution(kit: Kit) -> None:
    enable(kit)
    await kit.add_things("c1")
    job = await kit.deploy("c1")
    kit.recorder.take()
    await kit.jobs.cancel_execution(job, "c1", status_details={"by": "operator"})
    await kit.jobs.delete_execution(job, "c1", 1)
    got = events(kit)
    assert [(t, p["status"]) for t, p in got] == [
        (f"$aws/events/jobExecution/{job}/canceled", "CANCELED"),
        (f"$aws/events/jobExecution/{job}/deleted", "CANCELED"),
    ]
    assert got[0][1]["statusDetails"] == {"by": "operator"}
    assert got[1][1]["operation"] == "deleted"
