"""Repository of the firmware catalog and static thing groups (tables in schema/jobs.py).

Synchronous functions of a connection, like :mod:`lantern.store.jobs`: run them in a unit of
work, or inside an async transaction with ``AsyncConnection.run_sync``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select

from lantern.store.schema.jobs import firmware, thing_group_members, thing_groups

__all__ = [
    "FirmwareRecord",
    "GroupRecord",
    "add_members",
    "delete_firmware",
    "delete_group",
    "find_firmware",
    "get_firmware",
    "get_group",
    "group_members",
    "insert_firmware",
    "insert_group",
    "list_firmware",
    "list_groups",
    "remove_members",
]


@dataclass(frozen=True, slots=True)
class FirmwareRecord:
    id: str
    project: str
    name: str
    version: str
    size: int
    sha256: str
    object_key: str
    created_at: float


@dataclass(frozen=True, slots=True)
class GroupRecord:
    project: str
    name: str
    description: str
    created_at: float
    member_count: int


def _firmware(row: Row[Any]) -> FirmwareRecord:
    m = row._mapping
    return FirmwareRecord(
        id=m["id"],
        project=m["project"],
        name=m["name"],
        version=m["version"],
        size=int(m["size"]),
        sha256=m["sha256"],
        object_key=m["object_key"],
        created_at=m["created_at"],
    )


def insert_firmware(conn: Connection, record: FirmwareRecord) -> None:
    conn.execute(
        insert(firmware).values(
            id=record.id,
            project=record.project,
            name=record.name,
            version=record.version,
            size=record.size,
            sha256=record.sha256,
            object_key=record.object_key,
            created_at=record.created_at,
        )
    )


def get_firmware(conn: Connection, firmware_id: str) -> FirmwareRecord | None:
    row = conn.execute(select(firmware).where(firmware.c.id == firmware_id)).first()
    return _firmware(row) if row else None


def find_firmware(conn: Connection, project: str, name: str, version: str) -> FirmwareRecord | None:
    query = select(firmware).where(
        firmware.c.project == project, firmware.c.name == name, firmware.c.version == version
    )
    row = conn.execute(query).first()
    return _firmware(row) if row else None


def list_firmware(conn: Connection, project: str | None = None) -> list[FirmwareRecord]:
    query = select(firmware).order_by(firmware.c.created_at.desc(), firmware.c.id)
    if project is not None:
        query = query.where(firmware.c.project == project)
    return [_firmware(r) for r in conn.execute(query)]


def delete_firmware(conn: Connection, firmware_id: str) -> bool:
    result = conn.execute(delete(firmware).where(firmware.c.id == firmware_id))
    return result.rowcount == 1


# -- groups ---------------------------------------------------------------------------------------
def _group_query() -> Any:
    count = (
        select(func.count())
        .where(
            thing_group_members.c.project == thing_groups.c.project,
            thing_group_members.c.group_name == thing_groups.c.name,
        )
        .scalar_subquery()
    )
    return select(thing_groups, count.label("member_count"))


def _group(row: Row[Any]) -> GroupRecord:
    m = row._mapping
    return GroupRecord(
        project=m["project"],
        name=m["name"],
        description=m["description"],
        created_at=m["created_at"],
        member_count=int(m["member_count"]),
    )


def insert_group(conn: Connection, project: str, name: str, description: str, now: float) -> None:
    conn.execute(
        insert(thing_groups).values(
            project=project, name=name, description=description, created_at=now
        )
    )


def get_group(conn: Connection, project: str, name: str) -> GroupRecord | None:
    query = _group_query().where(thing_groups.c.project == project, thing_groups.c.name == name)
    row = conn.execute(query).first()
    return _group(row) if row else None


def list_groups(conn: Connection, project: str) -> list[GroupRecord]:
    query = _group_query().where(thing_groups.c.project == project).order_by(thing_groups.c.name)
    return [_group(r) for r in conn.execute(query)]


def delete_group(conn: Connection, project: str, name: str) -> bool:
    conn.execute(
        delete(thing_group_members).where(
            thing_group_members.c.project == project, thing_group_members.c.group_name == name
        )
    )
    result = conn.execute(
        delete(thing_groups).where(thing_groups.c.project == project, thing_groups.c.name == name)
    )
    return result.rowcount == 1


def group_members(conn: Connection, project: str, name: str) -> list[str]:
    query = (
        select(thing_group_members.c.thing_name)
        .where(thing_group_members.c.project == project, thing_group_members.c.group_name == name)
        .order_by(thing_group_members.c.thing_name)
    )
    return [r[0] for r in conn.execute(query)]


def add_members(
    conn: Connection, project: str, name: str, thing_names: Sequence[str], now: float
) -> int:
    """Add the things not yet members; returns how many were added."""
    present = set(group_members(conn, project, name))
    new = [t for t in dict.fromkeys(thing_names) if t not in present]
    if new:
        conn.execute(
            insert(thing_group_members),
            [
                {"project": project, "group_name": name, "thing_name": t, "added_at": now}
                for t in new
            ],
        )
    return len(new)


def remove_members(conn: Connection, project: str, name: str, thing_names: Sequence[str]) -> int:
    result = conn.execute(
        delete(thing_group_members).where(
            thing_group_members.c.project == project,
            thing_group_members.c.group_name == name,
            thing_group_members.c.thing_name.in_(list(thing_names)),
        )
    )
    return int(result.rowcount)
