"""Object storage for files (uploads, firmware images): a local directory or an S3 bucket.

Contract (both backends):

- ``put_stream`` consumes an async iterator of chunks without holding the whole object in memory,
  computes size and SHA-256, and publishes the object atomically at the end. If the stream raises,
  or the object grows past ``max_size`` (:class:`ObjectTooLarge`), nothing is stored under ``key``.
- ``open_range(key, start, end)`` yields the bytes ``[start, end)`` (``end`` exclusive, ``None`` =
  to the end of the object); HTTP's inclusive ``bytes=a-b`` is ``open_range(key, a, b + 1)``.
  Raises :class:`ObjectNotFound` (before yielding) for a missing key.
- ``stat`` returns ``None`` for a missing key. ``delete`` of a missing key is not an error.

Keys are relative, ``/``-separated paths of safe segments (letters, digits, ``._-``, not starting
with ``.``);
anything else raises :class:`InvalidObjectKey` so a key can never escape the store's root.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from lantern.settings.ingest import IngestSettings
from lantern.store.db import StoreError

READ_CHUNK = 256 * 1024
S3_PART_SIZE = 8 * 1024 * 1024  # S3 multipart parts must be >= 5 MiB (except the last)
# A segment never starts with "." so no key can name ".", "..", or the store's own ".tmp"/".meta".
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$")
_SHA256_META = "sha256"


class ObjectStoreError(StoreError):
    """Object storage failed or was asked something impossible."""


class ObjectTooLarge(ObjectStoreError):
    """The streamed object exceeded ``max_size``; nothing was stored."""

    http_status = 413
    code = "UploadRefused"

    def __init__(self, max_size: int) -> None:
        super().__init__(f"the object exceeds the size limit of {max_size} bytes")
        self.max_size = max_size


class ObjectNotFound(ObjectStoreError):
    """No object is stored under the key."""

    http_status = 404
    code = "NotFound"


class InvalidObjectKey(ObjectStoreError):
    """The key is not a safe relative path."""

    http_status = 400
    code = "UploadRefused"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str


def check_key(key: str) -> str:
    """``key`` itself when it is a safe relative path; raises :class:`InvalidObjectKey`."""
    parts = key.split("/")
    if not key or len(key) > 1024 or any(not _SEGMENT.match(p) for p in parts):
        raise InvalidObjectKey(f"invalid object key {key!r}")
    return key


class ObjectStore(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str, max_size: int
    ) -> StoredObject: ...

    def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...

    async def stat(self, key: str) -> StoredObject | None: ...

    async def delete(self, key: str) -> None: ...

    async def start(self) -> None:
        """Open what the store needs (an S3 client); before the first use."""
        ...

    async def close(self) -> None: ...


class LocalObjectStore:
    """Objects as files under ``root`` (``<data_dir>/files``), written to a temp file, fsynced and
    renamed into place. Content type and digest live in a sidecar under ``root/.meta`` written
    before the rename, so a visible object always has its metadata."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"

    async def start(self) -> None:
        """Nothing to open: files are opened per call."""

    async def close(self) -> None:
        """Nothing to close."""

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _meta_path(self, key: str) -> Path:
        return self.root.joinpath(".meta", *check_key(key).split("/"))

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str, max_size: int
    ) -> StoredObject:
        final = self._path(key)
        await asyncio.to_thread(self._tmp.mkdir, mode=0o700, parents=True, exist_ok=True)
        tmp = self._tmp / f"{secrets.token_hex(12)}.part"
        digest = hashlib.sha256()
        size = 0
        f: BinaryIO = await asyncio.to_thread(_create_private, tmp)
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_size:
                        raise ObjectTooLarge(max_size)
                    digest.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
                await asyncio.to_thread(_flush_and_sync, f)
            finally:
                await asyncio.to_thread(f.close)
            sha = digest.hexdigest()
            meta = self._meta_path(key)
            await asyncio.to_thread(self._publish, tmp, final, meta, content_type, sha)
        except BaseException:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(tmp.unlink, True)
            raise
        return StoredObject(key=key, size=size, sha256=sha, content_type=content_type)

    def _publish(self, tmp: Path, final: Path, meta: Path, content_type: str, sha: str) -> None:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        meta.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        meta_tmp = tmp.with_suffix(".meta")
        with _create_private(meta_tmp) as m:
            m.write(f"{content_type}\n{sha}\n".encode())
            _flush_and_sync(m)
        os.replace(meta_tmp, meta)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f: BinaryIO = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {key!r}") from None
        try:
            await asyncio.to_thread(f.seek, start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                n = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(f.read, n)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    async def stat(self, key: str) -> StoredObject | None:
        return await asyncio.to_thread(self._stat, key)

    def _stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
            content_type, sha = self._meta_path(key).read_text().split("\n")[:2]
        except (FileNotFoundError, ValueError):
            return None
        return StoredObject(key=key, size=size, sha256=sha, content_type=content_type)

    async def delete(self, key: str) -> None:
        path, meta = self._path(key), self._meta_path(key)

        def remove() -> None:
            path.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)

        await asyncio.to_thread(remove)


def _create_private(path: Path) -> BinaryIO:
    """A new file open for binary writing, mode 0600 from the start (whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _flush_and_sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _s3_error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (duck-typed: botocore ships no types)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


@dataclass(frozen=True, slots=True)
class S3Config:
    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    prefix: str = ""


class S3ObjectStore:
    """Objects in an S3 bucket through aiobotocore. Large objects go up as a multipart upload
    (bounded buffer of one part), aborted on any failure so nothing partial becomes visible.
    The SHA-256 is kept in the object's user metadata. Open with :meth:`start`, close with
    :meth:`close` (or ``async with``)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def start(self) -> None:
        from aiobotocore.session import get_session

        session = get_session()
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                region_name=self.config.region,
                endpoint_url=self.config.endpoint_url,
                aws_access_key_id=self.config.access_key_id,
                aws_secret_access_key=self.config.secret_access_key,
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def __aenter__(self) -> S3ObjectStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise ObjectStoreError("the S3 object store is not started")
        return self._client

    def object_name(self, key: str) -> str:
        """The bucket key of ``key`` (with the configured prefix)."""
        return self.config.prefix + check_key(key)

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str, max_size: int
    ) -> StoredObject:
        name = self.object_name(key)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        bucket = self.config.bucket
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    raise ObjectTooLarge(max_size)
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= S3_PART_SIZE:
                    if upload_id is None:
                        created = await self.client.create_multipart_upload(
                            Bucket=bucket, Key=name, ContentType=content_type
                        )
                        upload_id = created["UploadId"]
                    part = await self.client.upload_part(
                        Bucket=bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=bytes(buffer),
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": len(parts) + 1})
                    buffer.clear()
            sha = digest.hexdigest()
            if upload_id is None:
                await self.client.put_object(
                    Bucket=bucket,
                    Key=name,
                    Body=bytes(buffer),
                    ContentType=content_type,
                    Metadata={_SHA256_META: sha},
                )
            else:
                if buffer:
                    part = await self.client.upload_part(
                        Bucket=bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=bytes(buffer),
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": len(parts) + 1})
                await self.client.complete_multipart_upload(
                    Bucket=bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
                # Multipart uploads fix metadata at creation, before the digest is known: copy
                # the object onto itself to record it.
                await self.client.copy_object(
                    Bucket=bucket,
                    Key=name,
                    CopySource={"Bucket": bucket, "Key": name},
                    ContentType=content_type,
                    Metadata={_SHA256_META: sha},
                    MetadataDirective="REPLACE",
                )
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self.client.abort_multipart_upload(
                        Bucket=bucket, Key=name, UploadId=upload_id
                    )
            raise
        return StoredObject(key=key, size=size, sha256=sha, content_type=content_type)

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        args: dict[str, Any] = {"Bucket": self.config.bucket, "Key": self.object_name(key)}
        if end is not None and end <= start:
            return
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = await self.client.get_object(**args)
        except Exception as exc:
            if _s3_error_code(exc) in {"NoSuchKey", "404"}:
                raise ObjectNotFound(f"no object {key!r}") from None
            raise ObjectStoreError(f"S3 get_object failed: {exc}") from exc
        async with response["Body"] as body:
            while True:
                chunk = await body.read(READ_CHUNK)
                if not chunk:
                    break
                yield chunk

    async def stat(self, key: str) -> StoredObject | None:
        try:
            head = await self.client.head_object(
                Bucket=self.config.bucket, Key=self.object_name(key)
            )
        except Exception as exc:
            if _s3_error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise ObjectStoreError(f"S3 head_object failed: {exc}") from exc
        return StoredObject(
            key=key,
            size=int(head["ContentLength"]),
            sha256=head.get("Metadata", {}).get(_SHA256_META, ""),
            content_type=head.get("ContentType", "application/octet-stream"),
        )

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.config.bucket, Key=self.object_name(key))

    async def presign_put(self, key: str, *, content_type: str, expires_in: int) -> str:
        """A presigned ``PUT`` URL; the client must send exactly this ``Content-Type``."""
        url: str = await self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.config.bucket,
                "Key": self.object_name(key),
                "ContentType": content_type,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url

    async def presign_get(self, key: str, *, expires_in: int) -> str:
        """A presigned ``GET`` URL (Range requests work on it as on any S3 GET)."""
        url: str = await self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.config.bucket, "Key": self.object_name(key)},
            ExpiresIn=expires_in,
        )
        return url


def object_store_from_settings(
    cfg: IngestSettings, files_dir: Path, *, backend: str | None = None
) -> ObjectStore:
    """The object store ``[ingest] storage_backend`` names (or ``backend``, e.g. the one a file
    record was written to): the one factory the server and the CLI use. Call ``start()`` before
    use and ``close()`` after."""
    if (backend or cfg.storage_backend) != "s3":
        return LocalObjectStore(files_dir)
    if not cfg.s3_bucket:
        raise ObjectStoreError(
            "the object is in S3 but ingest.s3_bucket is not set "
            "(set it in the config file or LANTERN_INGEST__S3_BUCKET)"
        )
    secret = cfg.s3_secret_access_key
    return S3ObjectStore(
        S3Config(
            bucket=cfg.s3_bucket,
            region=cfg.s3_region,
            endpoint_url=cfg.s3_endpoint_url,
            access_key_id=cfg.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            prefix=cfg.s3_prefix,
        )
    )
