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

from sqlalchemy.exc import IntegrityError

from lantern.audit import AuditedAction, audited
from lantern.jobs.clock import Clock
from lantern.jobs.errors import Conflict, JobsError, NotFound
from lantern.store import Database
from lantern.store import firmware as fw_store
from lantern.store import jobs as jobs_store
from lantern.store.firmware import FirmwareRecord, GroupRecord
from lantern.store.jobs import JobStatus
from lantern.store.objects import ObjectStore

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
            if await fw_store.find_firmware(conn, project, name, version) is not None:
                raise Conflict(f"firmware {name} {version} already exists in project {project}")
        firmware_id = f"fw-{secrets.token_hex(8)}"
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
                await fw_store.insert_firmware(conn, record)
                await act.record(conn, size=record.size, sha256=record.sha256)
        except IntegrityError:
            await self.objects.delete(key)
            raise Conflict(
                f"firmware {name} {version} already exists in project {project}"
            ) from None
        return record

    async def get(self, firmware_id: str) -> FirmwareRecord:
        async with self.db.connect() as conn:
            record = await fw_store.get_firmware(conn, firmware_id)
        if record is None:
            raise NotFound(f"no firmware {firmware_id!r}")
        return record

    async def list_all(self, project: str | None = None) -> list[FirmwareRecord]:
        async with self.db.connect() as conn:
            return await fw_store.list_firmware(conn, project)

    async def users(self, firmware_id: str) -> list[str]:
        """Deployments still using the image (rolling out, or with executions not finished)."""
        async with self.db.connect() as conn:
            out = []
            for job in await jobs_store.jobs_using_firmware(conn, firmware_id):
                if job.status is JobStatus.IN_PROGRESS or await jobs_store.count_unfinished(
                    conn, job.job_id
                ):
                    out.append(job.job_id)
            return out

    async def delete(self, firmware_id: str) -> FirmwareRecord:
        """Delete an image no active deployment uses (finished ones keep their history)."""
        async with audited(self.db, "firmware.delete", firmware_id) as act:
            record = await self.get(firmware_id)
            users = await self.users(firmware_id)
            if users:
                raise Conflict(
                    f"firmware {firmware_id} is used by deployment(s) {', '.join(users)}; "
                    "cancel them or wait until they complete"
                )
            async with self.db.transaction() as conn:
                await fw_store.delete_firmware(conn, firmware_id)
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
                    await fw_store.insert_group(
                        conn, project, name, description[:500], self.clock.now()
                    )
                    await act.record(conn)
            except IntegrityError:
                raise Conflict(f"group {name} already exists in project {project}") from None

    async def get(self, name: str, project: str = "default") -> tuple[GroupRecord, list[str]]:
        async with self.db.connect() as conn:
            group = await fw_store.get_group(conn, project, name)
            if group is None:
                raise NotFound(f"no thing group {name!r} in project {project}")
            return group, await fw_store.group_members(conn, project, name)

    async def list_all(self, project: str = "default") -> list[GroupRecord]:
        async with self.db.connect() as conn:
            return await fw_store.list_groups(conn, project)

    async def delete(self, name: str, project: str = "default") -> None:
        async with (
            audited(self.db, "group.delete", name, project=project) as act,
            self.db.transaction() as conn,
        ):
            if not await fw_store.delete_group(conn, project, name):
                raise NotFound(f"no thing group {name!r} in project {project}")
            await act.record(conn)

    async def add(self, name: str, things: Sequence[str], project: str = "default") -> int:
        async with (
            audited(self.db, "group.add_things", name, project=project, things=_few(things)) as act,
            self.db.transaction() as conn,
        ):
            if await fw_store.get_group(conn, project, name) is None:
                raise NotFound(f"no thing group {name!r} in project {project}")
            found = await jobs_store.existing_things(conn, project, list(things))
            missing = [t for t in things if t not in found]
            if missing:
                raise NotFound(f"no such things in project {project}: {', '.join(missing[:5])}")
            added = await fw_store.add_members(conn, project, name, things, self.clock.now())
            await act.record(conn, added=added)
            return added

    async def remove(self, name: str, things: Sequence[str], project: str = "default") -> int:
        async with (
            audited(
                self.db, "group.remove_things", name, project=project, things=_few(things)
            ) as act,
            self.db.transaction() as conn,
        ):
            if await fw_store.get_group(conn, project, name) is None:
                raise NotFound(f"no thing group {name!r} in project {project}")
            removed = await fw_store.remove_members(conn, project, name, things)
            await act.record(conn, removed=removed)
            return removed


def _few(things: Sequence[str], limit: int = 20) -> list[str]:
    """The first ``limit`` thing names (an audit entry stays small; the count is recorded)."""
    return list(things[:limit])
