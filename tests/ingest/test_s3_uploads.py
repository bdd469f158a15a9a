"""Upload links with the S3 backend against moto's S3 server: direct presigned PUT (settled by
the reconciler) and proxy mode (Lantern streams to S3 and enforces every check)."""

from __future__ import annotations

import hashlib
import json

import httpx

from lantern.ingest.files import FileLinkService
from lantern.store import Database
from lantern.store import ingest as repo
from lantern.store.objects import S3ObjectStore
from lantern.store.schema.ingest import files
from lantern.store.signing import UrlSigner

from .conftest import count_rows, request, thing
from .s3 import MotoS3

TOPIC = "$aws/rules/CreateFileUploadLink"


def service(
    db: Database, store: S3ObjectStore, *, direct: bool, clock: list[float]
) -> FileLinkService:
    return FileLinkService(
        db,
        store,
        UrlSigner(b"k" * 32),
        base_url=lambda: "http://unused",
        backend="s3",
        s3_direct=direct,
        ttl_seconds=900,
        max_upload_bytes=1000,
        clock=lambda: clock[0],
    )


async def link(svc: FileLinkService, name: str, ctype: str = "image/png") -> dict[str, str]:
    payload = json.dumps({"fileName": name, "contentType": ctype}).encode()
    result = await svc.handle(request(TOPIC, payload, thing("dev1")))
    return dict(json.loads(result.replies[0].payload))


async def test_direct_presigned_put_is_recorded_and_oversize_deleted(
    db: Database, moto_s3: MotoS3
) -> None:
    import time

    clock = [time.time()]
    async with S3ObjectStore(moto_s3.config("direct")) as store:
        svc = service(db, store, direct=True, clock=clock)
        good = await link(svc, "pic.png")
        assert "X-Amz-Signature" in good["uploadUrl"] or "Signature" in good["uploadUrl"]
        big = await link(svc, "big.png")
        never = await link(svc, "never.png")
        async with httpx.AsyncClient() as client:
            r = await client.put(
                good["uploadUrl"], content=b"png-bytes", headers={"Content-Type": "image/png"}
            )
            assert r.status_code == 200, r.text
            r = await client.put(
                big["uploadUrl"], content=b"x" * 2000, headers={"Content-Type": "image/png"}
            )
            assert r.status_code == 200
        assert await svc.reconcile_s3() == 1
        async with db.connect() as conn:
            [record] = await repo.list_files(conn, thing_name="dev1")
            big_link = await repo.get_link(conn, big["fileId"])
        assert record.id == good["fileId"] and record.size == 9
        assert record.sha256 == hashlib.sha256(b"png-bytes").hexdigest()
        assert big_link is not None and big_link.state == "failed"
        assert await store.stat(f"uploads/{big['fileId']}") is None
        clock[0] += 2000
        await svc.reconcile_s3()
        async with db.connect() as conn:
            never_link = await repo.get_link(conn, never["fileId"])
        assert never_link is not None and never_link.state == "expired"
        assert await count_rows(db, files) == 1


async def test_proxy_mode_streams_to_s3_with_checks(db: Database, moto_s3: MotoS3) -> None:
    from urllib.parse import parse_qsl, urlsplit

    clock = [1_700_000_000.0]
    async with S3ObjectStore(moto_s3.config("proxy")) as store:
        svc = service(db, store, direct=False, clock=clock)
        issued = await link(svc, "notes.txt", "text/plain")
        parts = urlsplit(issued["uploadUrl"])
        file_id = parts.path.rsplit("/", 1)[1]
        query = dict(parse_qsl(parts.query))

        async def body(data: bytes):  # type: ignore[no-untyped-def]
            yield data

        from lantern.ingest.errors import UploadRefused

        try:
            await svc.receive_upload(file_id, query, "text/plain", None, body(b"y" * 1001))
            raise AssertionError("oversize accepted")
        except UploadRefused as exc:
            assert exc.http_status == 413
        assert await store.stat(f"uploads/{file_id}") is None
        record = await svc.receive_upload(file_id, query, "text/plain", None, body(b"hello"))
        assert record.size == 5 and record.backend == "s3"
        stat = await store.stat(f"uploads/{file_id}")
        assert stat is not None and stat.sha256 == hashlib.sha256(b"hello").hexdigest()
