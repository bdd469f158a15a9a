"""The firmware catalog (images in the object store, metadata in the database) and static
thing groups used as deployment targets.

Changes are recorded in the audit log in the transaction of the change (``firmware.upload``,
``firmware.delete``, ``group.create``, ``group.delete``, ``group.add_things``,
``group.remove_things``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from lantern.audit import AuditedAction, audited
from lantern.jobs.clock import Clock
from lantern.jobs.errors import JobsConflict, JobsError, JobsNotFound
from lantern.jobs.queries import JobsQueries
from lantern.store import Database
from lantern.store import firmware as fw_store
from lantern.store.firmware import FirmwareRecord
from lantern.store.jobs import deployments as jobs_store
from lantern.store.objects import ObjectStore

FIRMWARE_ID_PREFIX = "fw-"
"""Every firmware id starts so (``fw-`` + 16 hex digits); no deployment id may."""

FIRMWARE_PREFIX = "firmware"
CONTENT_TYPE = "application/octet-stream"
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_GROUP = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


def _check_label(value: str, what: str, limit: int = 64) -> str:
    value = value.strip()
    if not value or len(value) > limit or not _TEXT.match(value[:64]):
        raise JobsError(f"{what} must be 1-{limit} printable characters")
    return value


class FirmwareCatalog:
    def __init__(self, db: Database, objects: ObjectStore, clock: Clock, max_bytes: int) -> None:
        self.db = db
        self.objects = objects
        self.clock = clock
        self.max_bytes = max_bytes

    async def upload(
        self,
        chunks: AsyncIterator[bytes],
        *,
        version: str,
        name: str = "firmware",
        project: str = "default",
    ) -> FirmwareRecord:
        """Store an image and record its size and SHA-256. Nothing is kept on any error."""
        async with audited(
            self.db, "firmware.upload", name=name, version=version, project=project
        ) as act:
            return await self._upload(chunks, version, name, project, act)

    async def _upload(
        self,
        chunks: AsyncIterator[bytes],
        version: str,
        name: str,
        project: str,
        act: AuditedAction,
    ) -> FirmwareRecord:
        version = _check_label(version, "the firmware version")
        name = _check_label(name, "the firmware name", 128)
        async with self.db.connect() as conn:
            found = await conn.run_sync(lambda c: fw_store.find_firmware(c, project, name, version))
        if found is not None:
            raise JobsConflict(f"firmware {name} {version} already exists in project {project}")
        firmware_id = f"{FIRMWARE_ID_PREFIX}{secrets.token_hex(8)}"
        key = f"{FIRMWARE_PREFIX}/{firmware_id}"
        stored = await self.objects.put_stream(
            key, chunks, content_type=CONTENT_TYPE, max_size=self.max_bytes
        )
        if stored.size == 0:
            await self.objects.delete(key)
            raise JobsError("the firmware image is empty")
        record = FirmwareRecord(
            id=firmware_id,
            project=project,
            name=name,
            version=version,
            size=stored.size,
            sha256=stored.sha256,
            object_key=key,
            created_at=self.clock.now(),
        )
        act.target = firmware_id
        try:
            async with self.db.transaction() as conn:
                await conn.run_sync(lambda c: fw_store.insert_firmware(c, record))
                await act.record(conn, size=record.size, sha256=record.sha256)
        except IntegrityError:
            await self.objects.delete(key)
            raise JobsConflict(
                f"firmware {name} {version} already exists in project {project}"
            ) from None
        return record

    async def delete(self, firmware_id: str) -> FirmwareRecord:
        """Delete an image no active deployment uses (finished ones keep their history)."""
        queries = JobsQueries(self.db)
        async with audited(self.db, "firmware.delete", firmware_id) as act:
            record = await queries.firmware(firmware_id)
            users = await queries.firmware_users(firmware_id)
            if users:
                raise JobsConflict(
                    f"firmware {firmware_id} is used by deployment(s) {', '.join(users)}; "
                    "cancel them or wait until they complete"
                )
            async with self.db.transaction() as conn:
                await conn.run_sync(lambda c: fw_store.delete_firmware(c, firmware_id))
                await act.record(conn, name=record.name, version=record.version)
        await self.objects.delete(record.object_key)
        return record


class ThingGroups:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create(self, name: str, description: str = "", project: str = "default") -> None:
        async with audited(self.db, "group.create", name, project=project) as act:
            if not _GROUP.match(name):
                raise JobsError(
                    "a group name is 1-128 characters of letters, digits, ':', '_', '-'"
                )
            try:
                async with self.db.transaction() as conn:
                    now = self.clock.now()
                    await conn.run_sync(
                        lambda c: fw_store.insert_group(c, project, name, description[:500], now)
                    )
                    await act.record(conn)
            except IntegrityError:
                raise JobsConflict(f"group {name} already exists in project {project}") from None

    async def delete(self, name: str, project: str = "default") -> None:
        async with (
            audited(self.db, "group.delete", name, project=project) as act,
            self.db.transaction() as conn,
        ):
            if not await conn.run_sync(lambda c: fw_store.delete_group(c, project, name)):
                raise JobsNotFound(f"no thing group {name!r} in project {project}")
            await act.record(conn)

    async def add(self, name: str, things: Sequence[str], project: str = "default") -> int:
        async with (
            audited(self.db, "group.add_things", name, project=project, things=_few(things)) as act,
            self.db.transaction() as conn,
        ):
            now = self.clock.now()
            added = await conn.run_sync(lambda c: _add_members(c, project, name, things, now))
            await act.record(conn, added=added)
            return added

    async def remove(self, name: str, things: Sequence[str], project: str = "default") -> int:
        async with (
            audited(
                self.db, "group.remove_things", name, project=project, things=_few(things)
            ) as act,
            self.db.transaction() as conn,
        ):
            removed = await conn.run_sync(lambda c: _remove_members(c, project, name, things))
            await act.record(conn, removed=removed)
            return removed


def _add_members(
    conn: Connection, project: str, name: str, things: Sequence[str], now: float
) -> int:
    if fw_store.get_group(conn, project, name) is None:
        raise JobsNotFound(f"no thing group {name!r} in project {project}")
    found = jobs_store.existing_things(conn, project, list(things))
    missing = [t for t in things if t not in found]
    if missing:
        raise JobsNotFound(f"no such things in project {project}: {', '.join(missing[:5])}")
    return fw_store.add_members(conn, project, name, things, now)


def _remove_members(conn: Connection, project: str, name: str, things: Sequence[str]) -> int:
    if fw_store.get_group(conn, project, name) is None:
        raise JobsNotFound(f"no thing group {name!r} in project {project}")
    return fw_store.remove_members(conn, project, name, things)


def _few(things: Sequence[str], limit: int = 20) -> list[str]:
    """The first ``limit`` thing names (an audit entry stays small; the count is recorded)."""
    return list(things[:limit])
