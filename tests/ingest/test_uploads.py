"""CreateFileUploadLink and the upload endpoint over real HTTP: the happy path, and every abuse
(tampered, expired, reused, other device's link, wrong type, oversize, path tricks) -> 4xx and
nothing stored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from lantern.ingest.files import FileLinkService
from lantern.mqtt.reason_codes import ReasonCode
from lantern.store.schema.ingest import files

from .conftest import CLAIM, HttpApp, count_rows, request, thing

TOPIC = "$aws/rules/CreateFileUploadLink"


async def make_link(
    service: FileLinkService, device: str = "dev1", name: str = "dice", ctype: str = "image/png"
) -> dict[str, object]:
    payload = json.dumps({"fileName": name, "contentType": ctype}).encode()
    result = await service.handle(request(TOPIC, payload, thing(device)))
    assert result.puback == ReasonCode.SUCCESS
    topics = [r.topic for r in result.replies]
    assert topics == [device, f"{device}/CreateFileUploadLink/accepted"]
    assert all(r.to == "subscribers" for r in result.replies)
    body: dict[str, object] = json.loads(result.replies[0].payload)
    assert json.loads(result.replies[1].payload) == body
    return body


def stored_files(app: HttpApp) -> list[Path]:
    root = app.data_dir / "files"
    return [p for p in root.rglob("*") if p.is_file()]


async def test_upload_roundtrip(http_app: HttpApp) -> None:
    link = await make_link(http_app.files)
    assert isinstance(link["expiresAt"], int) and link["expiresAt"] == int(http_app.clock[0]) + 900
    data = b"\x89PNG" + bytes(range(256)) * 50
    async with http_app.client() as client:
        r = await client.put(
            str(link["uploadUrl"]), content=data, headers={"Content-Type": "image/png"}
        )
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["fileId"] == link["fileId"]
        assert doc["size"] == len(data)
        assert doc["sha256"] == hashlib.sha256(data).hexdigest()
        assert (doc["thingName"], doc["fileName"], doc["contentType"]) == (
            "dev1",
            "dice",
            "image/png",
        )
        auth = {"Authorization": f"Bearer {http_app.admin_token}"}
        listed = (await client.get("/files?thing=dev1", headers=auth)).json()["files"]
        assert [f["fileId"] for f in listed] == [link["fileId"]]
        assert (await client.get("/files?thing=other", headers=auth)).json()["files"] == []
        content = await client.get(f"/files/{link['fileId']}/content", headers=auth)
        assert content.content == data
        file_id = link["fileId"]
        for path in ("/files", f"/files/{file_id}", f"/files/{file_id}/content"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                denied = await client.get(path, headers=headers)
                assert denied.status_code == 401, path
                assert denied.json()["errorCode"] == "Unauthorized"


async def streamed(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(8192, total - sent)
        sent += n
        yield b"a" * n


async def test_abuse_cases_get_4xx_and_store_nothing(http_app: HttpApp) -> None:
    async with http_app.client() as client:

        async def put(
            url: str, data: bytes | AsyncIterator[bytes] = b"x", ctype: str = "image/png"
        ) -> httpx.Response:
            return await client.put(url, content=data, headers={"Content-Type": ctype})

        def check(r: httpx.Response, status: int, code: str) -> None:
            assert r.status_code == status, r.text
            assert r.json()["errorCode"] == code

        link = str((await make_link(http_app.files))["uploadUrl"])
        # tampered signature / altered parameters
        check(
            await put(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")),
            403,
            "InvalidSignature",
        )
        check(await put(link.replace("expires=", "expires=9")), 403, "InvalidSignature")
        check(await put(link.replace("thing=dev1", "thing=dev2")), 403, "InvalidSignature")
        check(await put(link.split("?")[0]), 403, "InvalidSignature")
        # other device's link: device 2's signed query on device 1's file id
        other = str((await make_link(http_app.files, device="dev2"))["uploadUrl"])
        path1 = urlsplit(link).path
        check(
            await put(http_app.base_url + path1 + "?" + urlsplit(other).query),
            403,
            "InvalidSignature",
        )
        # wrong content type
        check(await put(link, ctype="text/plain"), 415, "ContentTypeMismatch")
        # oversize: declared, then streamed without a length (chunked)
        check(await put(link, b"a" * (64 * 1024 + 1)), 413, "TooLarge")
        check(await put(link, streamed(200 * 1024)), 413, "TooLarge")
        assert stored_files(http_app) == []
        assert await count_rows(http_app.db, files) == 0
        # the failures above did not burn the link; a good upload works once
        assert (await put(link, b"ok")).status_code == 201
        check(await put(link, b"again"), 409, "LinkUsed")
        assert await count_rows(http_app.db, files) == 1
        # expired
        late = str((await make_link(http_app.files, name="late"))["uploadUrl"])
        http_app.clock[0] += 901
        check(await put(late), 403, "LinkExpired")
        # unknown / malformed file id
        check(
            await put(http_app.base_url + "/files/upload/bogus-id?" + urlsplit(late).query),
            404,
            "NotFound",
        )
        r = await put(http_app.base_url + "/files/upload/..%2F..%2Fetc?" + urlsplit(late).query)
        assert r.status_code == 404
    assert await count_rows(http_app.db, files) == 1
    assert len([p for p in stored_files(http_app) if ".meta" not in p.parts]) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"fileName": "../etc/passwd", "contentType": "text/plain"}, "fileName"),
        ({"fileName": "a\\b", "contentType": "text/plain"}, "fileName"),
        ({"fileName": "..", "contentType": "text/plain"}, "fileName"),
        ({"fileName": "", "contentType": "text/plain"}, "fileName"),
        ({"fileName": "x" * 256, "contentType": "text/plain"}, "fileName"),
        ({"fileName": "a\nb", "contentType": "text/plain"}, "fileName"),
        ({"contentType": "text/plain"}, "fileName"),
        ({"fileName": "ok"}, "contentType"),
        ({"fileName": "ok", "contentType": "png"}, "contentType"),
        ({"fileName": "ok", "contentType": "text/plain\r\nX: y"}, "contentType"),
        ({"fileName": 5, "contentType": "text/plain"}, "fileName"),
    ],
)
async def test_bad_link_requests_rejected(
    http_app: HttpApp, payload: dict[str, object], field: str
) -> None:
    result = await http_app.files.handle(
        request(TOPIC, json.dumps(payload).encode(), thing("dev1"))
    )
    assert result.puback == ReasonCode.PAYLOAD_FORMAT_INVALID
    [reply] = result.replies
    assert reply.topic == "dev1/CreateFileUploadLink/rejected"
    body = json.loads(reply.payload)
    assert body["statusCode"] == 400 and body["errorMessage"].startswith(field)
    from lantern.store.schema.ingest import upload_links

    assert await count_rows(http_app.db, upload_links) == 0


async def test_not_json_and_claim_identity(http_app: HttpApp) -> None:
    result = await http_app.files.handle(request(TOPIC, b"{", thing("dev1")))
    assert json.loads(result.replies[0].payload)["errorCode"] == "InvalidJson"
    result = await http_app.files.handle(request(TOPIC, b"{}", CLAIM))
    assert result.puback == ReasonCode.NOT_AUTHORIZED and result.replies == ()


async def test_concurrent_uploads_of_one_link_store_once(http_app: HttpApp) -> None:
    import asyncio

    link = str((await make_link(http_app.files))["uploadUrl"])
    async with http_app.client() as client:
        rs = await asyncio.gather(
            *(
                client.put(link, content=b"z" * 1000, headers={"Content-Type": "image/png"})
                for _ in range(5)
            )
        )
    assert sorted(r.status_code for r in rs) == [201, 409, 409, 409, 409]
    assert await count_rows(http_app.db, files) == 1
