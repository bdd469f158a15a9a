"""More files than one read: ``lantern files list`` and the read side list every file, the
console counts them, and ``GET /files`` pages (``limit``, keyset ``cursor`` on creation time and
id, ``nextCursor``) instead of stopping silently at the newest 1,000."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lantern.cli.main import app
from lantern.ingest import queries
from lantern.runtime.datadir import DataDir
from lantern.store import Database
from lantern.store import ingest as repo
from lantern.store.ingest import FileRecord
from support.process import LanternProcess

COUNT = 1_234


def file_ids(count: int = COUNT) -> list[str]:
    """Newest first, as the listings give them (every file in the same second but the last
    ten: the id breaks ties)."""
    return [f"file-{i:05d}" for i in reversed(range(count))]


async def add_files(db: Database, count: int = COUNT) -> None:
    async with db.transaction() as conn:
        for i in range(count):
            at = 2_000.0 if i >= count - 10 else 1_000.0
            await repo.insert_file(
                conn,
                FileRecord(
                    f"file-{i:05d}",
                    "default",
                    f"bed-{i % 3}",
                    "f.bin",
                    "application/octet-stream",
                    1,
                    "0" * 64,
                    f"k/{i}",
                    "local",
                    at,
                ),
            )


async def add_files_to(db_file: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{db_file}")
    try:
        await add_files(db)
    finally:
        await db.close()


async def test_every_file_is_listed_and_counted(db: Database) -> None:
    await add_files(db)
    assert [f.id for f in await queries.list_files(db)] == file_ids()
    assert await queries.count_files(db) == COUNT
    assert await queries.count_files(db, thing_name="bed-0") == len(range(0, COUNT, 3))
    older = await queries.files_page(db, before=(1_000.0, "file-00500"), limit=2)
    assert [f.id for f in older] == ["file-00499", "file-00498"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanternProcess]:
    with LanternProcess(tmp_path_factory.mktemp("files-paging") / "data") as proc:
        asyncio.run(add_files_to(proc.data_dir / "lantern.db"))
        yield proc


@pytest.fixture(scope="module")
def api(server: LanternProcess) -> Iterator[httpx.Client]:
    token = DataDir(server.data_dir).admin_token()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.http_url, headers=headers, timeout=30.0) as client:
        yield client


def test_get_files_pages_through_every_file(api: httpx.Client) -> None:
    found: list[str] = []
    cursor: str | None = None
    sizes = []
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = api.get("/files", params=params).json()
        sizes.append(len(body["files"]))
        found += [f["fileId"] for f in body["files"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert sizes == [500, 500, COUNT - 1000]
    assert found == file_ids()
    first = api.get("/files").json()
    assert len(first["files"]) == 100 and first["nextCursor"]


@pytest.mark.parametrize(
    ("params", "name"),
    [({"limit": "0"}, "limit"), ({"limit": "5000"}, "limit"), ({"cursor": "zzz"}, "cursor")],
)
def test_get_files_bad_paging_is_a_400_naming_it(
    api: httpx.Client, params: dict[str, str], name: str
) -> None:
    resp = api.get("/files", params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errorMessage"].startswith(f"{name}: ")


def test_cli_files_list_shows_every_file(server: LanternProcess) -> None:
    result = CliRunner().invoke(app, ["files", "list", "--json"], env=server.command_env())
    assert result.exit_code == 0, result.output
    assert [f["fileId"] for f in json.loads(result.stdout)] == file_ids()
