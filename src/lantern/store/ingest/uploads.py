"""Upload links (single use) and the files stored through them."""

from __future__ import annotations

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lantern.store.ingest.records import FileRecord, UploadLink
from lantern.store.schema.ingest import files, upload_links

__all__ = [
    "claim_link",
    "count_files",
    "get_file",
    "get_link",
    "insert_file",
    "insert_link",
    "list_files",
    "pending_links",
    "release_link",
    "set_link_state",
]


async def insert_link(conn: AsyncConnection, link: UploadLink) -> None:
    await conn.execute(
        insert(upload_links).values(
            id=link.id,
            project=link.project,
            thing_name=link.thing_name,
            file_name=link.file_name,
            content_type=link.content_type,
            object_key=link.object_key,
            backend=link.backend,
            created_at=link.created_at,
            expires_at=link.expires_at,
            used_at=link.used_at,
            state=link.state,
        )
    )


async def get_link(conn: AsyncConnection, link_id: str) -> UploadLink | None:
    row = (await conn.execute(select(upload_links).where(upload_links.c.id == link_id))).first()
    return None if row is None else UploadLink(**row._asdict())


async def claim_link(conn: AsyncConnection, link_id: str, now: float) -> bool:
    """Mark an unused link as in use; False when it was already used (or is being used)."""
    u = upload_links.c
    result = await conn.execute(
        update(upload_links)
        .where(u.id == link_id, u.used_at.is_(None), u.state == "pending")
        .values(used_at=now)
    )
    return bool(result.rowcount)


async def release_link(conn: AsyncConnection, link_id: str) -> None:
    """Undo :func:`claim_link` after a failed upload, so the device may try again."""
    await conn.execute(
        update(upload_links)
        .where(upload_links.c.id == link_id, upload_links.c.state == "pending")
        .values(used_at=None)
    )


async def set_link_state(conn: AsyncConnection, link_id: str, state: str) -> None:
    await conn.execute(update(upload_links).where(upload_links.c.id == link_id).values(state=state))


async def pending_links(conn: AsyncConnection, backend: str, limit: int = 100) -> list[UploadLink]:
    q = (
        select(upload_links)
        .where(upload_links.c.state == "pending", upload_links.c.backend == backend)
        .order_by(upload_links.c.created_at)
        .limit(limit)
    )
    return [UploadLink(**r._asdict()) for r in (await conn.execute(q)).all()]


async def insert_file(conn: AsyncConnection, record: FileRecord) -> None:
    await conn.execute(
        insert(files).values(
            id=record.id,
            project=record.project,
            thing_name=record.thing_name,
            file_name=record.file_name,
            content_type=record.content_type,
            size=record.size,
            sha256=record.sha256,
            object_key=record.object_key,
            backend=record.backend,
            created_at=record.created_at,
        )
    )


async def get_file(conn: AsyncConnection, file_id: str) -> FileRecord | None:
    row = (await conn.execute(select(files).where(files.c.id == file_id))).first()
    return None if row is None else FileRecord(**row._asdict())


async def list_files(
    conn: AsyncConnection,
    *,
    project: str | None = None,
    thing_name: str | None = None,
    limit: int = 1000,
    before: tuple[float, str] | None = None,
) -> list[FileRecord]:
    """At most ``limit`` files, newest first by (creation time, id), older than the key
    ``before`` when given (keyset paging)."""
    q = select(files).order_by(files.c.created_at.desc(), files.c.id.desc()).limit(limit)
    if project is not None:
        q = q.where(files.c.project == project)
    if thing_name is not None:
        q = q.where(files.c.thing_name == thing_name)
    if before is not None:
        q = q.where(tuple_(files.c.created_at, files.c.id) < tuple_(*before))
    return [FileRecord(**r._asdict()) for r in (await conn.execute(q)).all()]


async def count_files(
    conn: AsyncConnection, *, project: str | None = None, thing_name: str | None = None
) -> int:
    q = select(func.count()).select_from(files)
    if project is not None:
        q = q.where(files.c.project == project)
    if thing_name is not None:
        q = q.where(files.c.thing_name == thing_name)
    return int((await conn.execute(q)).scalar_one())
