"""Access keys on both databases: secrets sealed (never in clear), disable, delete, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from lantern.iam.errors import AccessKeyConflict, AccessKeyError, AccessKeyNotFound
from lantern.iam.keys import AccessKeys
from lantern.iam.secretbox import KEY_FILE, SecretBoxError, data_dir_box
from lantern.store import Database


@pytest.fixture
def keys(db: Database, tmp_path: Path) -> AccessKeys:
    return AccessKeys(db, data_dir_box(tmp_path))


async def test_create_stores_the_secret_sealed(
    keys: AccessKeys, db: Database, tmp_path: Path
) -> None:
    record, secret = await keys.create("ci", "operator")
    assert record.id.startswith("LKIA") and len(record.id) == 20
    assert len(secret) == 40
    async with db.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM access_keys"))).all()
    assert len(rows) == 1
    assert secret not in repr(rows)  # not in clear anywhere in the row
    key_file = tmp_path / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    active = await keys.active(record.id)
    assert active is not None and active.secret == secret and active.role == "operator"
    assert secret not in repr(active)
    await keys.used(record.id)
    [listed] = await keys.list()
    assert listed.last_used_at is not None


async def test_disable_and_delete(keys: AccessKeys) -> None:
    record, _ = await keys.create("ci", "readonly")
    await keys.disable("ci")
    assert await keys.active(record.id) is None
    with pytest.raises(AccessKeyConflict):
        await keys.disable(record.id)
    [listed] = await keys.list()
    assert listed.disabled_at is not None
    await keys.delete(record.id)
    assert await keys.list() == []
    with pytest.raises(AccessKeyNotFound):
        await keys.delete(record.id)


async def test_bad_input_changes_nothing(keys: AccessKeys) -> None:
    with pytest.raises(AccessKeyError, match="role must be one of"):
        await keys.create("ci", "root")
    with pytest.raises(AccessKeyError, match="invalid"):
        await keys.create("bad name", "admin")
    await keys.create("ci", "admin")
    with pytest.raises(AccessKeyConflict, match="exists"):
        await keys.create("ci", "admin")
    assert [k.name for k in await keys.list()] == ["ci"]


async def test_another_sealing_key_does_not_open_it(
    keys: AccessKeys, db: Database, tmp_path: Path
) -> None:
    record, _ = await keys.create("ci", "admin")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    with pytest.raises(SecretBoxError, match="does not open"):
        await AccessKeys(db, data_dir_box(other_dir)).active(record.id)
