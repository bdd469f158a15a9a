"""Generic jobs on the firmware engine, on a manual clock: any JSON document, presigned-URL
placeholders, retries (executionNumber / versionNumber as AWS), CONTINUOUS target groups,
exponential rollout, cancel and delete (with force), single executions."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from jobs.kit import Kit
from lantern.jobs.errors import (
    JobsConflict,
    JobsError,
    JobsNotFound,
    JobsStateError,
    JobsVersionConflict,
)
from lantern.jobs.generic import ExponentialRate, JobSettings, JobSpec, RetryCriterion
from lantern.jobs.queries import ExecStatus, JobStatus


def spec(job_id: str, *things: str, document: object = None, **options: object) -> JobSpec:
    doc = {"operation": "reboot", "delaySeconds": 5} if document is None else document
    return JobSpec(job_id=job_id, things=list(things), document=json.dumps(doc), **options)  # type: ignore[arg-type]


async def states(kit: Kit, job: str) -> dict[str, tuple[str, int, int]]:
    """thing -> (status, executionNumber, versionNumber)"""
    return {
        e.thing_name: (e.status.value, e.execution_number, e.version_number)
        for e in await kit.queries.job_executions(job)
    }


async def test_a_generic_document_reaches_the_device_as_stored(kit: Kit) -> None:
    await kit.add_things("dev1")
    document = {"operation": "reboot", "steps": [{"run": "sync"}, {"run": "reboot -f"}]}
    await kit.jobs.create(spec("reboot-1", "dev1", document=document))
    await kit.timer.tick()
    started = await kit.call("dev1", "start-next", {"clientToken": "c1"})
    assert started.accepted
    execution = started.body["execution"]
    assert execution["jobId"] == "reboot-1"
    assert execution["jobDocument"] == document
    assert (execution["status"], execution["versionNumber"], execution["executionNumber"]) == (
        "IN_PROGRESS",
        2,
        1,
    )
    done = await kit.call("dev1", "reboot-1/update", {"status": "SUCCEEDED"})
    assert done.accepted
    assert (await kit.timer.tick()).completed == ["reboot-1"]
    job = (await kit.queries.job("reboot-1")).job
    assert (job.status, job.kind) == (JobStatus.COMPLETED, "generic")
    # Not a firmware deployment: `lantern deployments list` does not show it.
    assert await kit.queries.list_deployments() == []


async def test_presigned_url_placeholders_become_signed_links_per_send(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    fw = await kit.add_firmware()
    document = {
        "files": [{"url": f"${{aws:iot:s3-presigned-url:lantern://firmware/{fw.id}}}"}],
        "note": "keep ${this}",
    }
    await kit.jobs.create(
        spec(
            "ota-1",
            "dev1",
            "dev2",
            document=document,
            settings=JobSettings(presigned_expires_seconds=120),
        )
    )
    await kit.timer.tick()
    links = {}
    for thing in ("dev1", "dev2"):
        got = await kit.call(thing, "ota-1/get", {})
        sent = got.body["execution"]["jobDocument"]
        assert sent["note"] == "keep ${this}"
        links[thing] = sent["files"][0]["url"]
    assert links["dev1"] != links["dev2"]
    url = urlsplit(links["dev1"])
    assert url.path == f"/v1/firmware/{fw.id}/image"
    query = dict(parse_qsl(url.query))
    kit.signer.verify("GET", url.path, query, kit.clock.now())
    assert int(kit.clock.now()) + 120 == max(int(v) for v in query.values() if v.isdigit())
    # The stored document keeps the placeholder (AWS GetJobDocument shows it as written).
    job = (await kit.queries.job("ota-1")).job
    assert job.document == document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"u": "${aws:iot:s3-presigned-url:https://example.com/x.bin}"}, "names no file"),
        ({"u": "${aws:iot:s3-presigned-url:lantern://firmware/fw-0123456789abcdef}"}, "no file"),
        ({"pad": "x" * 33_000}, "the limit is 32768"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_bad_documents_are_refused_and_nothing_is_stored(
    kit: Kit, document: object, message: str
) -> None:
    await kit.add_things("dev1")
    with pytest.raises(JobsError, match=message):
        await kit.jobs.create(spec("bad", "dev1", document=document))
    with pytest.raises(JobsNotFound):
        await kit.queries.job("bad")


async def test_bad_specs_name_the_field(kit: Kit) -> None:
    await kit.add_things("dev1")
    cases = [
        (spec("a b", "dev1"), "jobId"),
        (JobSpec(job_id="j", document="{}"), "targets"),
        (spec("j", "dev1", target_selection="SOMETIMES"), "targetSelection"),
        (JobSpec(job_id="j", things=["dev1"], document="{nope"), "not valid JSON"),
        (spec("j", "dev1", settings=JobSettings(max_per_minute=0)), "maximumPerMinute"),
        (
            spec("j", "dev1", settings=JobSettings(retry=[RetryCriterion("FAILED", 11)])),
            "numberOfRetries",
        ),
        (
            spec(
                "j",
                "dev1",
                settings=JobSettings(exponential=ExponentialRate(10, 9.0, notified=5)),
            ),
            "incrementFactor",
        ),
        (spec("j", "ghost"), "no such things"),
        (JobSpec(job_id="j", groups=["nogroup"], document="{}"), "no thing group"),
    ]
    for bad, message in cases:
        with pytest.raises(JobsError, match=message):
            await kit.jobs.create(bad)
    await kit.jobs.create(spec("j", "dev1"))
    with pytest.raises(JobsConflict, match="already exists"):
        await kit.jobs.create(spec("j", "dev1"))


async def test_document_source_reads_a_stored_file(kit: Kit) -> None:
    await kit.add_things("dev1")
    doc = {"operation": "configure", "level": 3}
    stored = await kit.catalog.upload(
        _chunks(json.dumps(doc).encode()), version="doc-1", name="config.json"
    )
    await kit.jobs.create(
        JobSpec(job_id="cfg", things=["dev1"], document_source=f"lantern://firmware/{stored.id}")
    )
    await kit.timer.tick()
    got = await kit.call("dev1", "cfg/get", {})
    assert got.body["execution"]["jobDocument"] == doc


async def _chunks(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def test_failed_executions_are_retried_up_to_the_count(kit: Kit) -> None:
    await kit.add_things("dev1")
    retry = [RetryCriterion("FAILED", 1)]
    await kit.jobs.create(spec("r", "dev1", settings=JobSettings(retry=retry)))
    await kit.timer.tick()
    assert await states(kit, "r") == {"dev1": ("QUEUED", 1, 1)}
    assert (await kit.call("dev1", "r/update", {"status": "FAILED"})).accepted
    kit.recorder.take()
    await kit.timer.tick()
    # A new execution: executionNumber 2, versionNumber back to 1, QUEUED; the device is told.
    assert await states(kit, "r") == {"dev1": ("QUEUED", 2, 1)}
    topics = [t.rsplit("/", 1)[1] for t, _ in kit.recorder.take()]
    assert topics == ["notify", "notify-next"]
    got = await kit.call("dev1", "r/get", {"executionNumber": 1})
    assert got.body["code"] == "ResourceNotFound"
    got = await kit.call("dev1", "start-next", {})
    assert got.body["execution"]["executionNumber"] == 2
    assert (await kit.call("dev1", "r/update", {"status": "FAILED"})).accepted
    report = await kit.timer.tick()
    assert await states(kit, "r") == {"dev1": ("FAILED", 2, 3)}
    assert report.completed == ["r"]


async def test_timed_out_executions_are_retried_for_timed_out_only(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    settings = JobSettings(in_progress_timeout_minutes=1, retry=[RetryCriterion("TIMED_OUT", 2)])
    await kit.jobs.create(spec("t", "dev1", "dev2", settings=settings))
    await kit.timer.tick()
    await kit.call("dev1", "start-next", {})
    await kit.call("dev2", "t/update", {"status": "FAILED"})  # no FAILED retries
    for number in (2, 3):
        kit.clock.advance(60)
        await kit.timer.tick()
        assert (await states(kit, "t"))["dev1"] == ("QUEUED", number, 1)
        await kit.call("dev1", "start-next", {})
    kit.clock.advance(60)
    report = await kit.timer.tick()
    assert await states(kit, "t") == {"dev1": ("TIMED_OUT", 3, 3), "dev2": ("FAILED", 1, 2)}
    assert report.completed == ["t"]


async def test_all_counts_both_failure_types(kit: Kit) -> None:
    await kit.add_things("dev1")
    settings = JobSettings(in_progress_timeout_minutes=1, retry=[RetryCriterion("ALL", 1)])
    await kit.jobs.create(spec("a", "dev1", settings=settings))
    await kit.timer.tick()
    await kit.call("dev1", "a/update", {"status": "FAILED"})
    await kit.timer.tick()
    await kit.call("dev1", "start-next", {})
    kit.clock.advance(60)
    await kit.timer.tick()
    assert await states(kit, "a") == {"dev1": ("TIMED_OUT", 2, 3)}


async def test_continuous_jobs_follow_their_group(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2", "dev3")
    await kit.groups.create("ward")
    await kit.groups.add("ward", ["dev1"])
    await kit.jobs.create(
        JobSpec(job_id="c", groups=["ward"], document="{}", target_selection="CONTINUOUS")
    )
    await kit.timer.tick()
    assert await states(kit, "c") == {"dev1": ("QUEUED", 1, 1)}
    await kit.groups.add("ward", ["dev2"])
    kit.recorder.take()
    await kit.timer.tick()
    assert await states(kit, "c") == {"dev1": ("QUEUED", 1, 1), "dev2": ("QUEUED", 1, 1)}
    assert any(t == "$aws/things/dev2/jobs/notify-next" for t, _ in kit.recorder.take())
    await kit.call("dev2", "start-next", {})
    await kit.groups.remove("ward", ["dev1", "dev2"])
    await kit.timer.tick()
    assert await states(kit, "c") == {"dev1": ("REMOVED", 1, 2), "dev2": ("REMOVED", 1, 3)}
    rejected = await kit.call("dev2", "c/update", {"status": "SUCCEEDED"})
    assert rejected.body["code"] == "InvalidStateTransition"
    # Back in the group: a new execution.
    await kit.groups.add("ward", ["dev1"])
    report = await kit.timer.tick()
    assert (await states(kit, "c"))["dev1"] == ("QUEUED", 2, 1)
    # Never completes while it runs, even with every execution terminal.
    await kit.call("dev1", "c/update", {"status": "SUCCEEDED"})
    report = await kit.timer.tick()
    assert report.completed == []
    assert (await kit.queries.job("c")).job.status is JobStatus.IN_PROGRESS
    await kit.jobs.cancel("c")
    assert (await kit.queries.job("c")).job.status is JobStatus.CANCELED


async def test_snapshot_jobs_ignore_later_group_members(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    await kit.groups.create("ward")
    await kit.groups.add("ward", ["dev1"])
    await kit.jobs.create(JobSpec(job_id="s", groups=["ward"], document="{}"))
    await kit.timer.tick()
    await kit.groups.add("ward", ["dev2"])
    await kit.timer.tick()
    assert set(await states(kit, "s")) == {"dev1"}


async def test_exponential_rollout(kit: Kit) -> None:
    names = [f"dev{i}" for i in range(12)]
    await kit.add_things(*names)
    rate = ExponentialRate(2, 2.0, succeeded=2)
    await kit.jobs.create(spec("e", *names, settings=JobSettings(exponential=rate)))
    assert (await kit.timer.tick()).released == {"e": 2}
    assert (await kit.timer.tick()).released == {}
    for name in ("dev0", "dev1"):
        await kit.call(name, "e/update", {"status": "SUCCEEDED"})
    # 2 succeeded: the rate doubles to 4 a minute, 2 of which this minute already used.
    assert (await kit.timer.tick()).released == {"e": 2}
    kit.clock.advance(60)
    assert (await kit.timer.tick()).released == {"e": 4}
    kit.clock.advance(60)
    assert (await kit.timer.tick()).released == {"e": 4}


async def test_cancel_and_delete_with_force(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    await kit.jobs.create(spec("k", "dev1", "dev2"))
    await kit.timer.tick()
    await kit.call("dev1", "start-next", {})
    with pytest.raises(JobsStateError, match="IN_PROGRESS"):
        await kit.jobs.delete("k")
    assert await kit.jobs.cancel("k", reason_code="BAD", comment="wrong build") == ["dev2"]
    job = (await kit.queries.job("k")).job
    assert (job.status, job.reason, job.comment) == (JobStatus.CANCELED, "BAD", "wrong build")
    assert (await states(kit, "k"))["dev1"][0] == "IN_PROGRESS"
    assert await kit.jobs.cancel("k", force=True) == ["dev1"]
    rejected = await kit.call("dev1", "k/update", {"status": "SUCCEEDED"})
    assert rejected.body["code"] == "InvalidStateTransition"
    await kit.jobs.delete("k")
    with pytest.raises(JobsNotFound):
        await kit.queries.job("k")

    await kit.jobs.create(spec("k2", "dev1"))
    await kit.timer.tick()
    kit.recorder.take()
    await kit.jobs.delete("k2", force=True)
    await kit.timer.flush()
    notes = dict(kit.recorder.take())
    assert notes["$aws/things/dev1/jobs/notify"]["jobs"] == {}


async def test_single_executions(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    await kit.jobs.create(spec("x", "dev1", "dev2"))
    await kit.timer.tick()
    await kit.call("dev1", "start-next", {})
    with pytest.raises(JobsStateError, match="force"):
        await kit.jobs.cancel_execution("x", "dev1")
    with pytest.raises(JobsVersionConflict):
        await kit.jobs.cancel_execution("x", "dev1", force=True, expected_version=1)
    await kit.jobs.cancel_execution(
        "x", "dev1", force=True, expected_version=2, status_details={"why": "ops"}
    )
    e = await kit.queries.execution("x", "dev1")
    assert (e.status, e.status_details) == (ExecStatus.CANCELED, {"why": "ops"})
    with pytest.raises(JobsStateError, match="terminal"):
        await kit.jobs.cancel_execution("x", "dev1")
    with pytest.raises(JobsStateError, match="force"):
        await kit.jobs.delete_execution("x", "dev2", 1)
    with pytest.raises(JobsNotFound):
        await kit.jobs.delete_execution("x", "dev1", 7)
    await kit.jobs.delete_execution("x", "dev1", 1)
    await kit.jobs.delete_execution("x", "dev2", 1, force=True)
    assert await kit.queries.job_executions("x") == []
    with pytest.raises(JobsNotFound):
        await kit.jobs.cancel_execution("x", "dev1")


async def test_a_snapshot_job_of_an_empty_group_completes(kit: Kit) -> None:
    await kit.groups.create("empty")
    await kit.jobs.create(JobSpec(job_id="none", groups=["empty"], document="{}"))
    assert (await kit.timer.tick()).completed == ["none"]
