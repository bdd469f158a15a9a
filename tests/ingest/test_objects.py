"""Object storage (local directory and S3 via moto's server) and the URL signer."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lantern.store.objects import (
    InvalidObjectKey,
    LocalObjectStore,
    ObjectNotFound,
    ObjectTooLarge,
    S3Config,
    S3ObjectStore,
)
from lantern.store.signing import (
    LinkExpired,
    LinkInvalid,
    UrlSigner,
    load_or_create_signing_key,
)

from .s3 import MotoS3, moto_s3  # noqa: F401 - fixture


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def failing_stream() -> AsyncIterator[bytes]:
    yield b"x" * 100
    raise ConnectionResetError("client went away")


async def collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in it])


def visible_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


async def test_local_put_stat_range_delete(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "files")
    data = os.urandom(700_000)
    obj = await store.put_stream(
        "p/t/abc", chunks_of(data, 65536), content_type="image/png", max_size=1_000_000
    )
    assert obj.size == len(data)
    assert obj.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.stat("p/t/abc") == obj
    assert await collect(store.open_range("p/t/abc")) == data
    assert await collect(store.open_range("p/t/abc", 10, 20)) == data[10:20]
    assert await collect(store.open_range("p/t/abc", 699_990)) == data[699_990:]
    await store.delete("p/t/abc")
    assert await store.stat("p/t/abc") is None
    assert visible_files(tmp_path / "files") == []
    await store.delete("p/t/abc")  # deleting twice is fine


async def test_local_too_large_stores_nothing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "files")
    with pytest.raises(ObjectTooLarge):
        await store.put_stream("k", chunks_of(b"a" * 5000), content_type="x/y", max_size=4999)
    assert await store.stat("k") is None
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


async def test_local_failed_stream_stores_nothing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "files")
    with pytest.raises(ConnectionResetError):
        await store.put_stream("k", failing_stream(), content_type="x/y", max_size=10_000)
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("key", ["", "../x", "a/../../x", "/abs", "a//b", ".meta/x", "a\\b", "a/."])
async def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path / "files")
    with pytest.raises(InvalidObjectKey):
        await store.put_stream(key, chunks_of(b"a"), content_type="x/y", max_size=10)
    assert not (tmp_path / "x").exists()


async def test_local_missing_key(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "files")
    with pytest.raises(ObjectNotFound):
        await collect(store.open_range("nope"))


def test_signer_roundtrip_and_tampering() -> None:
    signer = UrlSigner(b"k" * 32)
    q = signer.sign("PUT", "/files/upload/abc", 1000, {"thing": "dev1", "ct": "image/png"})
    query = dict(p.split("=", 1) for p in q.split("&"))
    from urllib.parse import unquote

    query = {k: unquote(v) for k, v in query.items()}
    assert signer.verify("PUT", "/files/upload/abc", query, now=999) == {
        "thing": "dev1",
        "ct": "image/png",
    }
    with pytest.raises(LinkExpired):
        signer.verify("PUT", "/files/upload/abc", query, now=1000)
    for bad in (
        {**query, "thing": "dev2"},
        {**query, "expires": "2000"},
        {**query, "signature": query["signature"][:-2] + "AA"},
        {**query, "extra": "1"},
        {k: v for k, v in query.items() if k != "signature"},
    ):
        with pytest.raises(LinkInvalid):
            signer.verify("PUT", "/files/upload/abc", bad, now=999)
    with pytest.raises(LinkInvalid):
        signer.verify("GET", "/files/upload/abc", query, now=999)
    with pytest.raises(LinkInvalid):
        signer.verify("PUT", "/files/upload/abd", query, now=999)
    with pytest.raises(LinkInvalid):
        UrlSigner(b"j" * 32).verify("PUT", "/files/upload/abc", query, now=999)


def test_signing_key_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path)
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / "signing.key").stat().st_mode) == 0o600
    assert load_or_create_signing_key(tmp_path) == key


@pytest.fixture
def s3_store_config(moto_s3: MotoS3) -> Iterator[S3Config]:  # noqa: F811
    yield moto_s3.config("objects-test")


async def test_s3_put_stat_range_delete_small_and_multipart(s3_store_config: S3Config) -> None:
    async with S3ObjectStore(s3_store_config) as store:
        small = b"hello world"
        obj = await store.put_stream(
            "a/b", chunks_of(small), content_type="text/plain", max_size=100
        )
        assert (obj.size, obj.sha256) == (len(small), hashlib.sha256(small).hexdigest())
        assert await store.stat("a/b") == obj
        assert await collect(store.open_range("a/b", 6)) == b"world"
        big = os.urandom(9 * 1024 * 1024)
        obj = await store.put_stream(
            "a/big", chunks_of(big, 1 << 20), content_type="x/y", max_size=len(big)
        )
        stat_ = await store.stat("a/big")
        assert stat_ is not None and stat_.sha256 == hashlib.sha256(big).hexdigest()
        assert stat_.size == len(big)
        assert await collect(store.open_range("a/big", 5, 15)) == big[5:15]
        await store.delete("a/big")
        assert await store.stat("a/big") is None
        with pytest.raises(ObjectNotFound):
            await collect(store.open_range("a/big"))


async def test_s3_too_large_after_a_part_stores_nothing(s3_store_config: S3Config) -> None:
    async with S3ObjectStore(s3_store_config) as store:
        data = b"z" * (9 * 1024 * 1024)
        with pytest.raises(ObjectTooLarge):
            await store.put_stream(
                "too/big", chunks_of(data, 1 << 20), content_type="x/y", max_size=len(data) - 1
            )
        assert await store.stat("too/big") is None
        uploads = await store.client.list_multipart_uploads(Bucket=s3_store_config.bucket)
        assert uploads.get("Uploads", []) == []
