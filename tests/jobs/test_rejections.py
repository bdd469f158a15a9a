"""All nine rejection codes, with clientToken echoed, executionState where AWS sends it, and
nothing changed by a rejected request."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from jobs.kit import Kit
from lantern.jobs.throttle import TokenBuckets
from lantern.store import Database
from lantern.store.jobs import JobsUnit


async def assert_unchanged(kit: Kit, job: str, version: int, status: str) -> None:
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["versionNumber"] == version
    assert d.body["execution"]["status"] == status


def rejected(r: Any, code: str, token: str | None = "t") -> dict[str, Any]:
    assert r.topic.endswith("/rejected"), r.body
    assert r.body["code"] == code, r.body
    assert isinstance(r.body["message"], str) and r.body["message"]
    assert isinstance(r.body["timestamp"], int)
    if token is None:
        assert "clientToken" not in r.body
    else:
        assert r.body["clientToken"] == token
    body: dict[str, Any] = r.body
    return body


@pytest.fixture
async def job(kit: Kit) -> str:
    await kit.add_things("dev1")
    return await kit.deploy("dev1")


async def test_invalid_topic(kit: Kit, job: str) -> None:
    for suffix in ("bogus", f"{job}/bogus", f"{job}/get/extra", "a/b/c/d"):
        r = await kit.call("dev1", suffix, {"clientToken": "t"})
        assert r.topic == f"$aws/things/dev1/jobs/{suffix}/rejected"
        body = rejected(r, "InvalidTopic")
        assert "executionState" not in body
    # Publishing on a response or stream topic gets no answer (no rejected/rejected loops).
    for suffix in ("get/accepted", f"{job}/update/rejected", "notify", "notify-next"):
        r = await kit.call("dev1", suffix, {"clientToken": "t"})
        assert r.result.replies == ()
    await assert_unchanged(kit, job, 1, "QUEUED")


# Requests refused while parsing (before storage is asked anything) run on SQLite only; the
# rejections that depend on stored state run on both databases.
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe", b'{"status": "IN_PROGRESS"'])
async def test_invalid_json(kit: Kit, job: str, payload: bytes) -> None:
    r = await kit.call("dev1", f"{job}/update", payload)
    rejected(r, "InvalidJson", token=None)
    await assert_unchanged(kit, job, 1, "QUEUED")


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "status is required"),
        ({"status": "QUEUED"}, "QUEUED"),
        ({"status": "CANCELED"}, "CANCELED"),
        ({"status": "TIMED_OUT"}, "TIMED_OUT"),
        ({"status": "REMOVED"}, "REMOVED"),
        ({"status": "DONE"}, "DONE"),
        ({"status": 3}, "status"),
        ({"status": "IN_PROGRESS", "statusDetails": "50%"}, "statusDetails"),
        ({"status": "IN_PROGRESS", "statusDetails": {"bad key": "x"}}, "bad key"),
        ({"status": "IN_PROGRESS", "statusDetails": {"k": "a\nb"}}, "control"),
        ({"status": "IN_PROGRESS", "statusDetails": {"k": ""}}, "1-1024"),
        ({"status": "IN_PROGRESS", "statusDetails": {"k": "x" * 1025}}, "1-1024"),
        ({"status": "IN_PROGRESS", "statusDetails": {"k": {"nested": 1}}}, "statusDetails.k"),
        ({"status": "IN_PROGRESS", "statusDetails": {f"k{i}": "v" for i in range(11)}}, "10"),
        ({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 0}, "stepTimeoutInMinutes"),
        ({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 10081}, "stepTimeoutInMinutes"),
        ({"status": "IN_PROGRESS", "stepTimeoutInMinutes": "5"}, "stepTimeoutInMinutes"),
        ({"status": "IN_PROGRESS", "expectedVersion": "1"}, "expectedVersion"),
        ({"status": "IN_PROGRESS", "executionNumber": 1.5}, "executionNumber"),
        ({"status": "IN_PROGRESS", "includeJobDocument": "yes"}, "includeJobDocument"),
        ({"status": "IN_PROGRESS", "clientToken": "x" * 65}, "clientToken"),
    ],
)
async def test_invalid_request_on_update(
    kit: Kit, job: str, body: dict[str, Any], needle: str
) -> None:
    token = body.get("clientToken", "t")
    r = await kit.call("dev1", f"{job}/update", {"clientToken": "t", **body})
    msg = rejected(r, "InvalidRequest", token=token if isinstance(token, str) else None)
    assert needle in msg["message"]
    assert "executionState" not in msg
    await assert_unchanged(kit, job, 1, "QUEUED")


async def test_invalid_request_other_apis(kit: Kit, job: str) -> None:
    r = await kit.call("dev1", "start-next", {"clientToken": "t", "stepTimeoutInMinutes": -1})
    rejected(r, "InvalidRequest")
    r = await kit.call("dev1", f"{job}/get", {"clientToken": "t", "executionNumber": "1"})
    rejected(r, "InvalidRequest")
    r = await kit.call("dev1", "get", b"[1, 2]")
    rejected(r, "InvalidRequest", token=None)
    r = await kit.call("dev1", "get", b'{"clientToken": 7}')
    rejected(r, "InvalidRequest", token=None)
    await assert_unchanged(kit, job, 1, "QUEUED")


async def test_invalid_state_transition_carries_execution_state(kit: Kit, job: str) -> None:
    await kit.call("dev1", f"{job}/update", {"status": "SUCCEEDED", "statusDetails": {"r": "ok"}})
    for status in ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"):
        r = await kit.call("dev1", f"{job}/update", {"status": status, "clientToken": "t"})
        body = rejected(r, "InvalidStateTransition")
        assert body["executionState"] == {
            "status": "SUCCEEDED",
            "statusDetails": {"r": "ok"},
            "versionNumber": 2,
        }


async def test_resource_not_found(kit: Kit, job: str) -> None:
    for suffix, body in [
        ("nope/get", {}),
        ("nope/update", {"status": "IN_PROGRESS"}),
        ("bad.id/get", {}),
        ("$next/update", {"status": "IN_PROGRESS"}),
        (f"{job}/get", {"executionNumber": 2}),
        (f"{job}/update", {"status": "IN_PROGRESS", "executionNumber": 2}),
    ]:
        r = await kit.call("dev1", suffix, {"clientToken": "t", **body})
        msg = rejected(r, "ResourceNotFound")
        assert "executionState" not in msg
    await kit.add_things("dev2")
    r = await kit.call("dev2", f"{job}/get", {"clientToken": "t"})  # job exists, not for dev2
    rejected(r, "ResourceNotFound")
    await assert_unchanged(kit, job, 1, "QUEUED")


async def test_version_mismatch_carries_execution_state(kit: Kit, job: str) -> None:
    r = await kit.call(
        "dev1", f"{job}/update", {"status": "IN_PROGRESS", "expectedVersion": 7, "clientToken": "t"}
    )
    body = rejected(r, "VersionMismatch")
    assert body["executionState"] == {"status": "QUEUED", "statusDetails": {}, "versionNumber": 1}
    await assert_unchanged(kit, job, 1, "QUEUED")
    ok = await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS", "expectedVersion": 1})
    assert ok.accepted


async def test_internal_error_echoes_token(
    kit: Kit, job: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("database on fire")

    # Fails after the execution's compare-and-swap, inside the batch's transaction: the whole
    # change must be rolled back.
    monkeypatch.setattr(JobsUnit, "lock_notify_states", broken)
    r = await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS", "clientToken": "t"})
    body = rejected(r, "InternalError")
    assert "fire" not in body["message"]  # internals are logged, not sent to devices
    monkeypatch.undo()
    await assert_unchanged(kit, job, 1, "QUEUED")


async def test_request_throttled(db: Database, tmp_path: Path) -> None:
    clock_kit = Kit(db, tmp_path)
    limiter = TokenBuckets(rate=1.0, burst=2, clock=clock_kit.clock)
    kit = Kit(db, tmp_path, limiter=limiter)
    kit.clock = clock_kit.clock
    await kit.add_things("dev1", "dev2")
    assert (await kit.call("dev1", "get", {"clientToken": "t"})).accepted
    assert (await kit.call("dev1", "get", {"clientToken": "t"})).accepted
    rejected(await kit.call("dev1", "get", {"clientToken": "t"}), "RequestThrottled")
    assert (await kit.call("dev2", "get", {"clientToken": "t"})).accepted  # per thing
    clock_kit.clock.advance(1.0)
    assert (await kit.call("dev1", "get", {"clientToken": "t"})).accepted


async def test_terminal_state_reached_on_describe_of_finished_job(kit: Kit, job: str) -> None:
    await kit.deployments.cancel(job, force=True)
    r = await kit.call("dev1", f"{job}/get", {"clientToken": "t"})
    msg = rejected(r, "TerminalStateReached")
    assert "executionState" not in msg
    u = await kit.call("dev1", f"{job}/update", {"status": "IN_PROGRESS", "clientToken": "t"})
    assert rejected(u, "InvalidStateTransition")["executionState"]["status"] == "CANCELED"


async def test_concurrent_updates_race_on_expected_version(kit: Kit, job: str) -> None:
    results = await asyncio.gather(
        *[
            kit.call(
                "dev1",
                f"{job}/update",
                {
                    "status": "IN_PROGRESS",
                    "expectedVersion": 1,
                    "statusDetails": {"writer": str(i)},
                    "clientToken": f"w{i}",
                },
            )
            for i in range(8)
        ]
    )
    winners = [r for r in results if r.accepted]
    losers = [r for r in results if not r.accepted]
    assert len(winners) == 1
    assert {r.body["code"] for r in losers} == {"VersionMismatch"}
    assert all(r.body["executionState"]["versionNumber"] == 2 for r in losers)
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["versionNumber"] == 2
    assert d.body["execution"]["statusDetails"]["writer"] == winners[0].body["clientToken"][1:]


async def test_concurrent_updates_without_expected_version_all_apply(kit: Kit, job: str) -> None:
    results = await asyncio.gather(
        *[
            kit.call(
                "dev1", f"{job}/update", {"status": "IN_PROGRESS", "statusDetails": {"i": str(i)}}
            )
            for i in range(6)
        ]
    )
    assert all(r.accepted for r in results)
    d = await kit.call("dev1", f"{job}/get")
    assert d.body["execution"]["versionNumber"] == 7
