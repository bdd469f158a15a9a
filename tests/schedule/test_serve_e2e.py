"""End to end: a research server creates a schedule over HTTP on a running ``lantern serve``;
reminders reach the APNs stand-in across a New York spring-forward night and a restart; a dead
token is deactivated. The server's scheduler clock is started just before the DST change and
runs 300x fast (test knob LANTERN_TEST_SCHEDULE_CLOCK)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lantern.store import Database
from lantern.store.schedule import OccurrenceRecord, ScheduleStore
from support.apns_standin import APNsStandIn, Reply, SigningKey
from support.process import LanternProcess

SECRET = "seed-style-key-0123456789"
LIVE, DEAD = "a1" * 32, "d0" * 32


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[APNsStandIn]:
    key = SigningKey.create(tmp_path)
    # Two server processes start minutes apart, each signing its first provider token; the
    # stand-in's (realistic) 20-minute refresh limit is about one process, so it is off here.
    with APNsStandIn(tmp_path / "apns-tls", key, enforce_refresh_limit=False) as s:
        yield s


def env(standin: APNsStandIn, clock_start: str) -> dict[str, str]:
    return {
        "API_KEYS": SECRET,
        "API_KEYS_SCOPE": "external",
        "LANTERN_PUSH__APNS__KEY_FILE": str(standin.key.path),
        "LANTERN_PUSH__APNS__KEY_ID": standin.key.key_id,
        "LANTERN_PUSH__APNS__TEAM_ID": standin.key.team_id,
        "LANTERN_PUSH__APNS__TOPIC": standin.topic,
        "LANTERN_PUSH__APNS__HOST": standin.host,
        "LANTERN_PUSH__APNS__CA_FILE": str(standin.ca_file),
        "LANTERN_SCHEDULE__TICK_SECONDS": "60",
        "LANTERN_SCHEDULE__MISFIRE_GRACE_SECONDS": "3600",
        "LANTERN_TEST_SCHEDULE_CLOCK": f"{clock_start}@300",
    }


def wait_until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll another process's state until ``check`` returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


def test_reminders_cross_a_dst_change_and_a_restart(standin: APNsStandIn, data_dir: Path) -> None:
    standin.answer(DEAD, Reply(410, "Unregistered", timestamp_ms=1_700_000_000_000))
    auth = {"Authorization": f"Bearer {SECRET}"}
    # 06:50Z is 01:50 EST; at 07:00Z New York jumps from 02:00 EST to 03:00 EDT.
    with LanternProcess(data_dir, env=env(standin, "2025-03-09T06:50:00Z")) as server:
        r = httpx.post(
            f"{server.http_url}/schedules",
            headers=auth,
            json={
                "activity_id": "act-7",
                "participant_id": "U42",
                "destinations": [f"apns:{LIVE}", f"apns:{DEAD}"],
                "title": "Check-in",
                "message": "secret-marker-in-message",
                "timezone": "America/New_York",
                "start": "2025-03-09T00:00:00",
                "cron": "0,30 * * * *",
            },
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        # 02:00 and 02:30 do not exist that night: one occurrence at 03:00 EDT, then 03:30.
        assert r.json()["next_fire_times"][:3] == [
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:30:00-04:00",
            "2025-03-09T04:00:00-04:00",
        ]
        r = httpx.post(
            f"{server.http_url}/schedules",
            headers=auth,
            json={**r.json(), "destinations": ["mailto:a@b.org"]} | {"id": None},
        )
        assert r.status_code == 400  # (echoing a view back is not a request)

        def history() -> list[dict[str, Any]]:
            got = httpx.get(f"{server.http_url}/schedules/{sid}/history", headers=auth)
            return list(got.json()["occurrences"])

        first = wait_until(lambda: [o for o in history() if o["status"] != "claimed"])
        assert standin.count_for(LIVE) == 1
    assert server.stop() == 0
    assert [(o["scheduled_at"], o["status"]) for o in first] == [
        ("2025-03-09T03:00:00-04:00", "partial")
    ]
    assert [r["status"] for r in first[0]["results"]] == ["delivered", "dead_token"]

    # Restart (the clock resumes at 07:20Z = 03:20 EDT): 03:30 fires once, the dead token is
    # not retried, nothing fires twice.
    with LanternProcess(data_dir, env=env(standin, "2025-03-09T07:20:00Z")) as server:
        wait_until(lambda: any(o["status"] == "fired" for o in history()))
        view = httpx.get(f"{server.http_url}/schedules/{sid}", headers=auth).json()
    assert server.stop() == 0
    occurrences = asyncio.run(stored_history(data_dir, sid))
    slots = [o.scheduled_at for o in occurrences]
    assert len(slots) == len(set(slots))  # one row per occurrence, across the restart
    assert sorted(slots)[:2] == [1741503600, 1741505400]  # 03:00 EDT, 03:30 EDT
    assert occurrences[0].status == "partial"
    assert {o.status for o in occurrences[1:]} == {"fired"}  # after the first: live token only
    delivered = sum(1 for o in occurrences for d in o.deliveries if d.status == "delivered")
    assert standin.count_for(LIVE) == delivered  # every send recorded, none twice
    assert standin.count_for(DEAD) == 1
    assert [d["active"] for d in view["destinations"]] == [True, False]
    assert view["destinations"][1]["deactivated_reason"] == "Unregistered"
    pushed = standin.requests[0]
    assert pushed.headers["apns-collapse-id"] == f"{sid}-1741503600"
    assert b"secret-marker-in-message" in pushed.body  # the phone gets the text ...
    assert "secret-marker-in-message" not in server.output  # ... the logs do not


async def stored_history(data_dir: Path, sid: str) -> list[OccurrenceRecord]:
    db = await Database.open(f"sqlite+aiosqlite:///{data_dir / 'lantern.db'}")
    try:
        return list(reversed(await ScheduleStore(db).history(sid, 1000)))
    finally:
        await db.close()
