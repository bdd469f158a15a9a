"""API keys: secrets shown once and stored only hashed, revocation, rotation, env import."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import FakeClock
from lantern.push.errors import PushError
from lantern.push.keys import KeyNotFound, KeyService, hash_secret
from lantern.store import Database


async def test_created_key_has_256_bits_and_only_its_hash_is_stored(
    sqlite_db: Database, tmp_path: Path
) -> None:
    keys = KeyService(sqlite_db)
    key, secret = await keys.create("Org A", "external", rate_per_minute=60)
    assert secret.startswith("lk_") and len(secret) >= 3 + 43  # 32 random bytes, base64url
    assert (await keys.authenticate(secret)) == key
    rows = await keys.list()
    assert [r.secret_hash for r in rows] == [hash_secret(secret)]
    await sqlite_db.close()
    for file in tmp_path.glob("test.db*"):
        assert secret.encode() not in file.read_bytes()


async def test_unknown_empty_and_near_miss_secrets_are_refused(keys: KeyService) -> None:
    _, secret = await keys.create("Org", "internal")
    for wrong in ("", secret[:-1], secret + "x", secret.upper(), "x" * 300):
        assert await keys.authenticate(wrong) is None


async def test_revoked_key_is_refused_and_kept_with_time_and_note(sqlite_db: Database) -> None:
    clock = FakeClock()
    keys = KeyService(sqlite_db, clock=clock)
    key, secret = await keys.create("Org", "external")
    assert await keys.authenticate(secret) is not None  # now cached
    row = await keys.revoke(key.id, "left the consortium")
    assert await keys.authenticate(secret) is None
    assert row.revoked_at == clock.now and row.revoke_note == "left the consortium"
    with pytest.raises(PushError, match="already revoked"):
        await keys.revoke(key.id)
    with pytest.raises(KeyNotFound):
        await keys.revoke("key_nope")


async def test_revocation_by_another_process_applies_after_the_cache_time(
    sqlite_db: Database,
) -> None:
    clock = FakeClock()
    server = KeyService(sqlite_db, clock=clock, cache_seconds=1.0)
    cli = KeyService(sqlite_db, clock=clock)
    key, secret = await cli.create("Org", "external")
    assert await server.authenticate(secret) is not None
    await cli.revoke(key.id)
    clock.advance(1.01)
    assert await server.authenticate(secret) is None


async def test_rotate_with_grace_keeps_old_key_until_the_grace_ends(sqlite_db: Database) -> None:
    clock = FakeClock()
    keys = KeyService(sqlite_db, clock=clock, cache_seconds=0)
    old, old_secret = await keys.create("Org", "external", rate_per_minute=30)
    new, new_secret = await keys.rotate(old.id, grace_seconds=3600)
    assert new.id != old.id and (new.name, new.scope, new.rate_per_minute) == (
        "Org",
        "external",
        30,
    )
    assert await keys.authenticate(old_secret) == old
    assert await keys.authenticate(new_secret) == new
    clock.advance(3601)
    assert await keys.authenticate(old_secret) is None
    assert await keys.authenticate(new_secret) == new
    row = await keys.get(old.id)
    assert row.replaced_by == new.id and "rotated" in (row.revoke_note or "")


async def test_rotate_without_grace_revokes_at_once(keys: KeyService) -> None:
    old, old_secret = await keys.create("Org", "internal")
    _, new_secret = await keys.rotate(old.id)
    assert await keys.authenticate(old_secret) is None
    assert await keys.authenticate(new_secret) is not None


async def test_bad_key_parameters_change_nothing(keys: KeyService) -> None:
    with pytest.raises(PushError):
        await keys.create("", "external")
    with pytest.raises(PushError):
        await keys.create("Org", "external", rate_per_minute=0)
    assert await keys.list() == []


async def test_env_import_adds_new_keys_and_revokes_removed_ones(keys: KeyService) -> None:
    assert await keys.import_env(["aaaaaaaaaaaaaaaa", " bbbbbbbbbbbbbbbb ", ""], "external") == (
        2,
        0,
    )
    assert (await keys.authenticate("bbbbbbbbbbbbbbbb")) is not None
    # Running again with the same list is a no-op; dropping one revokes it (seed's procedure).
    assert await keys.import_env(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"], "external") == (0, 0)
    assert await keys.import_env(["aaaaaaaaaaaaaaaa"], "external") == (0, 1)
    assert await keys.authenticate("bbbbbbbbbbbbbbbb") is None
    imported = await keys.authenticate("aaaaaaaaaaaaaaaa")
    assert imported is not None and imported.scope == "external"
    assert all("aaaa" not in r.name for r in await keys.list())


async def test_concurrent_checks_after_cache_expiry_cost_one_store_lookup(
    sqlite_db: Database,
) -> None:
    clock = FakeClock()
    keys = KeyService(sqlite_db, clock=clock, cache_seconds=1.0)
    key, secret = await keys.create("Org", "external")
    lookups = 0
    by_hash = keys.store.by_hash

    async def counting(digest: str) -> object:
        nonlocal lookups
        lookups += 1
        return await by_hash(digest)

    keys.store.by_hash = counting  # type: ignore[method-assign,assignment]
    results = await asyncio.gather(*(keys.authenticate(secret) for _ in range(50)))
    assert results == [key] * 50 and lookups == 1
    clock.advance(2.0)  # the cached row expired: one more lookup for the next burst
    results = await asyncio.gather(*(keys.authenticate(secret) for _ in range(50)))
    assert results == [key] * 50 and lookups == 2
    wrong = await asyncio.gather(*(keys.authenticate(secret + "x") for _ in range(5)))
    assert wrong == [None] * 5 and lookups == 3  # unknown keys are never cached


async def test_a_lookup_racing_a_revocation_does_not_cache_the_old_row(
    sqlite_db: Database,
) -> None:
    keys = KeyService(sqlite_db, cache_seconds=60.0)
    key, secret = await keys.create("Org", "external")
    read, release = asyncio.Event(), asyncio.Event()
    by_hash = keys.store.by_hash

    async def slow(digest: str) -> object:
        row = await by_hash(digest)  # read before the revocation commits
        read.set()
        await release.wait()
        return row

    keys.store.by_hash = slow  # type: ignore[method-assign,assignment]
    racing = asyncio.create_task(keys.authenticate(secret))
    await asyncio.wait_for(read.wait(), 10)
    keys.store.by_hash = by_hash  # type: ignore[method-assign]
    await keys.revoke(key.id, "compromised")
    release.set()
    await racing  # may still see the key: it started before the revocation
    assert await keys.authenticate(secret) is None  # but nothing stale was cached


async def test_env_import_of_a_key_another_node_stored_meanwhile_is_not_an_error(
    sqlite_db: Database,
) -> None:
    """Cluster nodes started at once import the same API_KEYS: a node that read the keys before
    another stored them loses the insert and carries on (it stopped serve before)."""
    other = KeyService(sqlite_db)
    late = KeyService(sqlite_db)
    real_all = late.store.all
    raced: list[bool] = []

    async def stale(**kw: object) -> object:
        rows = await real_all(**kw)  # type: ignore[arg-type]
        if not kw and not raced:  # the other node stores it right after this node read them
            raced.append(True)
            assert await other.import_env(["cccccccccccccccc"], "external") == (1, 0)
        return rows

    late.store.all = stale  # type: ignore[method-assign]
    assert await late.import_env(["cccccccccccccccc"], "external") == (0, 0)
    assert await late.authenticate("cccccccccccccccc") is not None
    assert len(await late.list()) == 1
