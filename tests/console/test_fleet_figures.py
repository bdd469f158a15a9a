"""The console with a fleet larger than one read: the overview counts every thing, every
provisioning of the last hour and every push outcome of the last hour (counts, not the first
1,000 rows), and the devices page knows how many devices there are. No browser needed."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from console.conftest import admin_token
from lantern.store import Database
from lantern.store import registry as reg
from lantern.store.push import DeliveryRow, append_deliveries
from support.process import LanternProcess

OLD, RECENT = 1_480, 25  # things created long ago, and in the last hour
SENT, FAILED = 1_100, 40  # push deliveries of the last hour


async def populate(db_file: str) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{db_file}")
    now = time.time()
    try:
        async with db.transaction() as conn:

            def write(c: object) -> None:
                for i in range(OLD + RECENT):
                    at = 1_000.0 if i < OLD else now - 60
                    reg.insert_thing_sync(
                        c,  # type: ignore[arg-type]
                        reg.ThingRecord(
                            f"bed-{i:05d}", "default", {}, None, "s", "m", "x", "n", at, at
                        ),
                    )
                rows = [
                    DeliveryRow(
                        uuid.uuid4().hex, None, "fcm", "h", status, 200, None, 1, 1.0, now - 120
                    )
                    for status in ["sent"] * SENT + ["failed"] * FAILED
                ]
                append_deliveries(c, rows)  # type: ignore[arg-type]

            await conn.run_sync(write)
    finally:
        await db.close()


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("console-fleet") / "lantern-data"
    with LanternProcess(data_dir).start(timeout=90) as proc:
        asyncio.run(populate(str(proc.data_dir / "lantern.db")))
        with httpx.Client(base_url=proc.http_url, timeout=30.0) as client:
            form = client.get("/console/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            signed = client.post(
                "/console/sign-in",
                data={"csrf": csrf.group(1), "mode": "token", "token": admin_token(proc)},
            )
            assert signed.status_code == 303
            yield client


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace(" :", ":")


def test_overview_counts_the_whole_fleet(http: httpx.Client) -> None:
    page = http.get("/console/overview/figures")
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert f"of {OLD + RECENT} " in text
    assert f"{RECENT} devices provisioned in the last hour" in text
    assert f"sent: {SENT}" in text and f"failed: {FAILED}" in text


def test_devices_page_knows_how_many_devices_exist(http: httpx.Client) -> None:
    text = text_of(http.get("/console/devices").text)
    assert f"{OLD + RECENT} devices (the first 500 by name" in text
