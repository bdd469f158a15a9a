"""A fleet larger than one read: every thing and certificate is listed
(``RegistryQueries.things``/``certificates``, ``lantern things|certs list``), things are
counted without reading them, and ``GET /v1/things`` and ``GET /v1/certificates`` page with
``limit`` and an opaque keyset ``cursor`` (``nextCursor``) instead of stopping silently at
1,000 rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from lantern.cli.main import app
from lantern.provisioning.queries import RegistryQueries
from lantern.runtime.datadir import DataDir
from lantern.store import Database
from lantern.store import registry as reg
from support.process import LanternProcess

FLEET = 2_345  # more than two statements' worth (1,000) of things, not a round number
CERTS = 1_203  # certificates, all created in the same second (the id breaks the tie)


def thing(name: str, created_at: float = 1_000.0) -> reg.ThingRecord:
    return reg.ThingRecord(name, "default", {}, None, "s", "m", "x", "n", created_at, created_at)


async def add_things(db: Database, names: list[str], created_at: float = 1_000.0) -> None:
    async with db.transaction() as conn:
        await conn.run_sync(
            lambda c: [reg.insert_thing_sync(c, thing(n, created_at)) for n in names]
        )


def cert_ids(count: int = CERTS) -> list[str]:
    return [f"{i:064x}" for i in range(count)]


async def add_certificates(db: Database, ids: list[str], status: str = "ACTIVE") -> None:
    async with db.transaction() as conn:
        await conn.run_sync(
            lambda c: [
                reg.insert_certificate_sync(
                    c,
                    reg.CertificateRecord(i, "pem", "device", status, "default", None, 7.0, 7.0),
                )
                for i in ids
            ]
        )


async def add_things_to_file(
    db_file: Path, names: list[str], certificates: list[str] | None = None
) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{db_file}")
    try:
        await add_things(db, names)
        if certificates:
            await add_certificates(db, certificates)
    finally:
        await db.close()


def fleet_names(count: int = FLEET) -> list[str]:
    return [f"sensor-{i:05d}" for i in range(count)]


# -- the read side, on SQLite and PostgreSQL ----------------------------------------------------
async def test_every_thing_is_listed_and_counted(db: Database) -> None:
    names = fleet_names()
    await add_things(db, names[:-10])
    await add_things(db, names[-10:], created_at=5_000.0)
    queries = RegistryQueries(db)
    listed = [t.name for t in await queries.things()]
    assert listed == sorted(names)
    assert await queries.thing_count() == FLEET
    assert await queries.thing_count(created_since=4_000.0) == 10
    assert await queries.thing_count("another-project") == 0
    page = await queries.things_page("sensor-00999", 3)
    assert [t.name for t in page] == ["sensor-01000", "sensor-01001", "sensor-01002"]


async def test_every_certificate_is_listed(db: Database) -> None:
    await add_certificates(db, cert_ids())
    await add_certificates(db, [f"{i:064x}" for i in range(CERTS, CERTS + 5)], "REVOKED")
    queries = RegistryQueries(db)
    assert [c.id for c in await queries.certificates(status="ACTIVE")] == cert_ids()
    assert len(await queries.certificates()) == CERTS + 5
    assert len(await queries.certificates(status="REVOKED")) == 5


# -- GET /v1/things against a real server -------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    proc = LanternProcess(tmp_path_factory.mktemp("things-paging") / "data")
    with proc:
        db_file = proc.data_dir / "lantern.db"
        asyncio.run(add_things_to_file(db_file, fleet_names(), cert_ids()))
        yield proc


@pytest.fixture(scope="module")
def api(server: LanternProcess) -> Iterator[httpx.Client]:
    token = DataDir(server.data_dir).admin_token()
    with httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    ) as client:
        yield client


def pages(api: httpx.Client, what: str = "things", **params: Any) -> list[list[str]]:
    """Every page of ``GET /v1/<what>``, following ``nextCursor`` to the end."""
    key = {"things": "thingName", "certificates": "certificateId"}[what]
    found: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        resp = api.get(f"/v1/{what}", params=query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        found.append([t[key] for t in body[what]])
        cursor = body["nextCursor"]
        if cursor is None:
            return found
        assert len(found) < 100, "nextCursor never ends"


def test_v1_things_pages_through_the_whole_fleet(api: httpx.Client) -> None:
    every = pages(api, limit=1000)
    assert [len(p) for p in every] == [1000, 1000, FLEET - 2000]
    assert [n for p in every for n in p] == fleet_names()


def test_v1_things_default_page_says_more_exist(api: httpx.Client) -> None:
    body = api.get("/v1/things").json()
    assert len(body["things"]) == 100
    assert isinstance(body["nextCursor"], str)
    second = api.get("/v1/things", params={"cursor": body["nextCursor"]}).json()
    assert second["things"][0]["thingName"] == fleet_names()[100]
    last = api.get("/v1/things", params={"limit": FLEET}).status_code
    assert last == 400  # above the maximum


def test_v1_things_cursor_is_a_keyset_not_an_offset(
    server: LanternProcess, api: httpx.Client
) -> None:
    first = api.get("/v1/things", params={"limit": 5}).json()
    # Things created before the cursor's position do not shift the next page.
    asyncio.run(add_things_to_file(server.data_dir / "lantern.db", ["aaa-1", "aaa-2"]))
    try:
        second = api.get("/v1/things", params={"limit": 5, "cursor": first["nextCursor"]})
        assert [t["thingName"] for t in second.json()["things"]] == fleet_names()[5:10]
    finally:
        for name in ("aaa-1", "aaa-2"):
            assert api.delete(f"/v1/things/{name}").status_code == 200


def test_v1_certificates_pages_through_every_certificate(api: httpx.Client) -> None:
    every = pages(api, "certificates", limit=500, status="ACTIVE")
    assert [len(p) for p in every] == [500, 500, CERTS - 1000]
    assert [i for p in every for i in p] == cert_ids()
    assert len(pages(api, "certificates", limit=1000)) == 2
    first = api.get("/v1/certificates").json()
    assert len(first["certificates"]) == 100 and first["nextCursor"]


@pytest.mark.parametrize("what", ["things", "certificates"])
@pytest.mark.parametrize("limit", ["0", "1001", "abc", "-1", "2.5", ""])
def test_v1_bad_limit_is_a_400_naming_it(api: httpx.Client, what: str, limit: str) -> None:
    resp = api.get(f"/v1/{what}", params={"limit": limit})
    assert resp.status_code == 400, resp.text
    message = resp.json()["errorMessage"]
    assert message.startswith("limit: ") and "1 to 1000" in message


@pytest.mark.parametrize("what", ["things", "certificates"])
@pytest.mark.parametrize("cursor", ["not-a-cursor", "c2Vuc29y", "%%%"])
def test_v1_bad_cursor_is_a_400_naming_it(api: httpx.Client, what: str, cursor: str) -> None:
    resp = api.get(f"/v1/{what}", params={"cursor": cursor})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errorMessage"].startswith("cursor: ")


# -- lantern things list ------------------------------------------------------------------------
def test_cli_things_list_shows_the_whole_fleet(data_dir: Path) -> None:
    runner = CliRunner()
    data_dir.mkdir()
    assert runner.invoke(app, ["things", "list", "--data-dir", str(data_dir)]).exit_code == 0
    asyncio.run(add_things_to_file(data_dir / "lantern.db", fleet_names(1_234), cert_ids()))
    result = runner.invoke(app, ["things", "list", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert [t["thingName"] for t in json.loads(result.output)] == fleet_names(1_234)
    result = runner.invoke(app, ["certs", "list", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert [c["certificateId"] for c in json.loads(result.output)] == cert_ids()
