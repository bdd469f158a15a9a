"""The Jobs device API at handler level: fields, state machine, notifications, identity."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from jobs.kit import BASE_URL, Kit
from lantern.gateway import ClaimIdentity, ThingIdentity
from lantern.mqtt.reason_codes import ReasonCode


def topics(notes: list[tuple[str, dict[str, object]]]) -> list[str]:
    return [t.rsplit("/", 1)[1] for t, _ in notes]


async def test_get_pending_with_nothing_has_both_lists_and_echoes_token(kit: Kit) -> None:
    await kit.add_things("dev1")
    r = await kit.call("dev1", "get", {"clientToken": "tok-1"})
    assert r.topic == "$aws/things/dev1/jobs/get/accepted"
    assert r.body["inProgressJobs"] == [] and r.body["queuedJobs"] == []
    assert r.body["clientToken"] == "tok-1"
    assert isinstance(r.body["timestamp"], int) and r.body["timestamp"] == int(kit.clock.now())
    assert r.notifications == []


async def test_complete_update_flow_fields_versions_and_notifications(kit: Kit) -> None:
    await kit.add_things("dev1")
    fw = await kit.add_firmware(version="2.1.0")
    job = await kit.deploy("dev1")
    published = kit.recorder.take()
    assert topics(published) == ["notify", "notify-next"]
    notify_msg, next_msg = published[0][1], published[1][1]
    summary = notify_msg["jobs"]["QUEUED"][0]
    assert summary["jobId"] == job and summary["versionNumber"] == 1
    assert summary["executionNumber"] == 1 and "startedAt" not in summary
    assert "IN_PROGRESS" not in notify_msg["jobs"]
    assert next_msg["execution"]["status"] == "QUEUED"
    assert next_msg["execution"]["jobDocument"]["firmwareUrl"].startswith(BASE_URL)

    pending = await kit.call("dev1", "get", {"clientToken": "a"})
    assert [j["jobId"] for j in pending.body["queuedJobs"]] == [job]
    assert isinstance(pending.body["queuedJobs"][0]["queuedAt"], int)

    kit.clock.advance(5)
    d = await kit.call("dev1", f"{job}/get", {"clientToken": "b"})
    ex = d.body["execution"]
    assert d.body["clientToken"] == "b"
    assert ex["jobId"] == job and ex["thingName"] == "dev1" and ex["status"] == "QUEUED"
    assert ex["versionNumber"] == 1 and ex["executionNumber"] == 1 and ex["statusDetails"] == {}
    doc = ex["jobDocument"]
    assert doc["operation"] == "firmware_update" and doc["deploymentId"] == job
    assert doc["firmwareId"] == fw.id and doc["firmwareVersion"] == "2.1.0"
    assert doc["sha256"] == fw.sha256 and doc["size"] == fw.size
    url = urlsplit(doc["firmwareUrl"])
    query = dict(parse_qsl(url.query))
    assert url.path == f"/v1/firmware/{fw.id}/image"
    assert int(query["expires"]) == int(kit.clock.now()) + 3600  # minted at this send
    assert kit.signer.verify("GET", url.path, query, kit.clock.now())["thing"] == "dev1"

    kit.clock.advance(5)
    u = await kit.call(
        "dev1",
        f"{job}/update",
        {"status": "IN_PROGRESS", "statusDetails": {"percentProgress": 0}, "clientToken": "c"},
    )
    assert u.accepted and u.body == {"timestamp": int(kit.clock.now()), "clientToken": "c"}
    assert u.notifications == []  # QUEUED -> IN_PROGRESS of the head: neither notify nor next

    d = await kit.call("dev1", f"{job}/get", {"includeJobDocument": False})
    ex = d.body["execution"]
    assert ex["status"] == "IN_PROGRESS" and ex["versionNumber"] == 2
    assert ex["statusDetails"] == {"percentProgress": "0"}
    assert ex["startedAt"] == int(kit.clock.now()) and "jobDocument" not in ex

    u = await kit.call(
        "dev1",
        f"{job}/update",
        {
            "status": "SUCCEEDED",
            "statusDetails": {"percentProgress": "100"},
            "includeJobExecutionState": True,
            "includeJobDocument": True,
            "expectedVersion": 2,
        },
    )
    assert u.body["executionState"] == {
        "status": "SUCCEEDED",
        "statusDetails": {"percentProgress": "100"},
        "versionNumber": 3,
    }
    assert u.body["jobDocument"]["sha256"] == fw.sha256
    assert "clientToken" not in u.body
    assert topics(u.notifications) == ["notify", "notify-next"]
    assert u.notifications[0][1]["jobs"] == {}
    assert u.notifications[1][1] == {"timestamp": int(kit.clock.now())}
    assert all(r.to == "requester" for r in u.result.replies[:1])

    done = await kit.call("dev1", "get")
    assert done.body["inProgressJobs"] == [] and done.body["queuedJobs"] == []


async def test_status_details_omitted_are_kept_and_given_are_replaced(kit: Kit) -> None:
    await kit.add_things("dev1")
    job = await kit.deploy("dev1")
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS", "statusDetails": {"a": "1"}})
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["statusDetails"] == {"a": "1"}
    await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS", "statusDetails": {"b": "2"}})
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["statusDetails"] == {"b": "2"}
    assert d.body["execution"]["versionNumber"] == 4


async def test_start_next_picks_in_progress_first_then_oldest_queued(kit: Kit) -> None:
    await kit.add_things("dev1")
    first = await kit.deploy("dev1")
    kit.clock.advance(10)
    second = await kit.deploy("dev1")
    kit.recorder.take()

    s = await kit.call(
        "dev1",
        "start-next",
        {"statusDetails": {"step": "download"}, "stepTimeoutInMinutes": 5, "clientToken": "s1"},
    )
    ex = s.body["execution"]
    assert s.body["clientToken"] == "s1"
    assert ex["jobId"] == first and ex["status"] == "IN_PROGRESS" and ex["versionNumber"] == 2
    assert ex["statusDetails"] == {"step": "download"} and "firmwareUrl" in ex["jobDocument"]
    assert s.notifications == []  # the head did not change

    again = await kit.call("dev1", "start-next", {"statusDetails": {"step": "ignored"}})
    assert again.body["execution"]["jobId"] == first
    assert again.body["execution"]["statusDetails"] == {"step": "download"}
    assert again.body["execution"]["versionNumber"] == 2

    await kit.call("dev1", f"{first}/update", {"status": "SUCCEEDED"})
    nxt = await kit.call("dev1", "start-next")
    assert nxt.body["execution"]["jobId"] == second
    await kit.call("dev1", f"{second}/update", {"status": "FAILED"})
    empty = await kit.call("dev1", "start-next", {"clientToken": "e"})
    assert empty.body == {"timestamp": int(kit.clock.now()), "clientToken": "e"}


async def test_describe_next(kit: Kit) -> None:
    await kit.add_things("dev1")
    none = await kit.call("dev1", "$next/get", {"clientToken": "n0"})
    assert none.accepted and "execution" not in none.body and none.body["clientToken"] == "n0"
    job = await kit.deploy("dev1")
    d = await kit.call("dev1", "$next/get")
    assert d.body["execution"]["jobId"] == job and "jobDocument" in d.body["execution"]


async def test_notify_triggers_follow_the_head_of_the_pending_list(kit: Kit) -> None:
    await kit.add_things("dev1")
    a = await kit.deploy("dev1")
    kit.recorder.take()
    kit.clock.advance(1)
    b = await kit.deploy("dev1")
    published = kit.recorder.take()
    # A second execution was added behind the head: notify only.
    assert topics(published) == ["notify"]
    assert [s["jobId"] for s in published[0][1]["jobs"]["QUEUED"]] == [a, b]

    # A non-head execution becomes IN_PROGRESS and moves ahead: notify-next only.
    r = await kit.call("dev1", f"{b}/update", {"status": "IN_PROGRESS"})
    assert topics(r.notifications) == ["notify-next"]
    assert r.notifications[0][1]["execution"]["jobId"] == b

    # The head (b) reaches a terminal state: notify and notify-next (a is the new head).
    r = await kit.call("dev1", f"{b}/update", {"status": "SUCCEEDED"})
    assert topics(r.notifications) == ["notify", "notify-next"]
    assert r.notifications[1][1]["execution"]["jobId"] == a

    # A non-head... none left: a terminal head with nothing behind it.
    r = await kit.call("dev1", f"{a}/update", {"status": "REJECTED"})
    assert topics(r.notifications) == ["notify", "notify-next"]
    assert "execution" not in r.notifications[1][1]


async def test_notify_lists_at_most_ten_in_progress_first(kit: Kit) -> None:
    await kit.add_things("dev1")
    ids = []
    for _ in range(12):
        ids.append(await kit.deploy("dev1"))
        kit.clock.advance(1)
    await kit.call("dev1", f"{ids[5]}/update", {"status": "IN_PROGRESS"})
    kit.recorder.take()
    r = await kit.call("dev1", f"{ids[0]}/update", {"status": "SUCCEEDED"})
    jobs = dict(r.notifications)["$aws/things/dev1/jobs/notify"]["jobs"]
    assert [s["jobId"] for s in jobs["IN_PROGRESS"]] == [ids[5]]
    assert "startedAt" in jobs["IN_PROGRESS"][0]
    assert [s["jobId"] for s in jobs["QUEUED"]] == [i for i in ids[1:] if i != ids[5]][:9]


async def test_device_on_another_things_topics_is_refused(kit: Kit) -> None:
    await kit.add_things("dev1", "dev2")
    job = await kit.deploy("dev1")
    other = ThingIdentity("cert2", "dev2", "default")
    for suffix in ("get", "start-next", f"{job}/get", f"{job}/update", "bogus"):
        r = await kit.call("dev1", suffix, {"status": "SUCCEEDED"}, identity=other)
        assert r.result.replies == () and r.result.puback == ReasonCode.NOT_AUTHORIZED
    claim = ClaimIdentity("c", "claim", "default", frozenset())
    r = await kit.call("dev1", "get", identity=claim)
    assert r.result.puback == ReasonCode.NOT_AUTHORIZED and r.result.replies == ()
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["status"] == "QUEUED" and d.body["execution"]["versionNumber"] == 1


async def test_executions_not_yet_rolled_out_are_invisible(kit: Kit) -> None:
    await kit.add_things("dev1")
    job = await kit.deploy("dev1", tick=False)
    assert (await kit.call("dev1", "get")).body["queuedJobs"] == []
    r = await kit.call("dev1", f"{job}/get", {"clientToken": "p"})
    assert r.body["code"] == "ResourceNotFound" and r.body["clientToken"] == "p"
    r = await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS"})
    assert r.body["code"] == "ResourceNotFound"
