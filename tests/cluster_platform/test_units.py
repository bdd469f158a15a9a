"""The pieces without a server: sealing the shared material, the node id, one-node duties."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from lantern.cluster.node import node_id
from lantern.cluster.registry import STALE_SECONDS, NodeRegistration, list_status
from lantern.cluster.secrets import WrongClusterSecret, open_sealed, seal
from lantern.cluster.singleton import FileLock, Singleton
from lantern.errors import ConfigError
from lantern.store import Database
from lantern.store import cluster as repo
from lantern.store.cluster import NodeRecord

SECRET = "a passphrase of some length"


def test_sealed_values_open_with_the_secret_only() -> None:
    values = {"ca.key": b"-----BEGIN PRIVATE KEY-----\n...", "admin-token": b"lat_x"}
    sealed = seal(values, SECRET)
    assert all(b"BEGIN" not in s.ciphertext and b"lat_x" not in s.ciphertext for s in sealed)
    assert len({s.nonce for s in sealed}) == len(sealed)
    assert open_sealed(sealed, SECRET) == values
    with pytest.raises(WrongClusterSecret, match="LANTERN_CLUSTER__SECRET"):
        open_sealed(sealed, SECRET + "!")


def test_a_sealed_value_cannot_be_passed_off_as_another() -> None:
    key, token = seal({"ca.key": b"k", "admin-token": b"t"}, SECRET)
    swapped = dataclasses.replace(token, name="ca.key")
    with pytest.raises(WrongClusterSecret):
        open_sealed([key, swapped], SECRET)


def test_an_unknown_key_derivation_is_refused_by_name() -> None:
    (one,) = seal({"ca.key": b"k"}, SECRET)
    with pytest.raises(ConfigError, match="scrypt-v9"):
        open_sealed([dataclasses.replace(one, kdf="scrypt-v9")], SECRET)


def test_node_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = node_id(None, tmp_path)
    assert first == node_id(None, tmp_path) == (tmp_path / "node-id").read_text().strip()
    assert (tmp_path / "node-id").stat().st_mode & 0o077 == 0
    assert node_id("configured", tmp_path) == "configured"


async def test_a_duty_runs_under_one_lock_holder_at_a_time(tmp_path: Path) -> None:
    running: list[str] = []

    def duty(name: str):  # type: ignore[no-untyped-def]
        async def run(stop: asyncio.Event) -> None:
            running.append(name)
            await stop.wait()
            running.remove(name)

        return run

    path = tmp_path / "locks" / "timer.lock"
    one = Singleton("timer", FileLock(path), duty("one"), retry_seconds=0.05)
    two = Singleton("timer", FileLock(path), duty("two"), retry_seconds=0.05)
    await one.start()
    await asyncio.sleep(0.2)
    await two.start()
    await asyncio.sleep(0.3)
    assert running == ["one"] and one.held and not two.held
    await one.stop()  # the holder goes away: the other takes over
    for _ in range(100):
        if running == ["two"]:
            break
        await asyncio.sleep(0.02)
    assert running == ["two"] and two.held
    await two.stop()
    assert running == []


async def test_a_node_id_in_use_on_another_machine_is_refused(sqlite_db: Database) -> None:
    now = time.time()
    elsewhere = NodeRecord("node-a", "other-host", 42, "0", "h:1", "http://h", now, now, 0)
    async with sqlite_db.transaction() as conn:
        await repo.upsert_node(conn, elsewhere)
    copy = NodeRegistration(
        sqlite_db, "node-a", mqtt_address="x:1", http_address="http://x", connections=lambda: 0
    )
    with pytest.raises(ConfigError, match="node id 'node-a' is in use by a running node"):
        await copy.register()
    # Once that node is silent for the stale time, the id may be taken over (it died).
    copy._clock = lambda: now + STALE_SECONDS + 1
    await copy.register()
    assert [n.node_id for n in await list_status(sqlite_db)] == ["node-a"]
