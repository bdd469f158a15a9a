"""File upload links (docs/device-topics.md): the ``$aws/rules/CreateFileUploadLink`` handler
and the checks of the upload itself.

A link names a ``fileId`` row in ``upload_links``. With the local store (or S3 in proxy mode) the
URL points at Lantern's ``PUT /files/upload/<fileId>`` and is signed by :class:`UrlSigner`;
:meth:`FileLinkService.receive_upload` checks signature, expiry, single use (an atomic claim of
the row), content type and size, streams the body to the object store and records the file. On
any failure the object is not published, the file row is not written and the link is released.

With S3 in direct mode the URL is an S3 presigned PUT (content type signed in); S3 cannot enforce
single use or size, so :meth:`FileLinkService.reconcile_s3` settles pending links afterwards:
it records what arrived within limits and deletes oversize objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal

from lantern import jsonlimits
from lantern.gateway.identity import ThingIdentity
from lantern.gateway.router import DeviceRequest, HandlerResult, Reply
from lantern.ingest.errors import PayloadRejected, UploadRefused
from lantern.ingest.observations import rejected_reply
from lantern.jsonlimits import JSONTooDeep
from lantern.mqtt.reason_codes import ReasonCode
from lantern.store import Database
from lantern.store import ingest as repo
from lantern.store.objects import ObjectStore, ObjectTooLarge, S3ObjectStore
from lantern.store.signing import LinkExpired, LinkInvalid, UrlSigner

log = logging.getLogger(__name__)

CREATE_LINK_TOPIC = "$aws/rules/CreateFileUploadLink"
UPLOAD_PATH = "/files/upload/"
_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
_FILE_ID = re.compile(r"^[0-9a-f]{32}$")


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def parse_link_request(payload: bytes) -> tuple[str, str]:
    """``(fileName, contentType)`` of a CreateFileUploadLink payload; raises PayloadRejected."""

    def bad(field: str, message: str, code: str = "InvalidPayload") -> PayloadRejected:
        return PayloadRejected(field=field, error_code=code, message=message)

    if len(payload) > 4096:
        raise bad("payload", "payload is larger than 4096 bytes", "PayloadTooLarge")
    try:
        doc = jsonlimits.loads(payload)
    except JSONTooDeep as exc:
        raise bad("payload", f"payload is {exc}", "InvalidJson") from None
    except ValueError:  # UnicodeDecodeError is one
        raise bad("payload", "payload is not valid JSON", "InvalidJson") from None
    if not isinstance(doc, dict):
        raise bad("payload", "payload must be a JSON object")
    name = doc.get("fileName")
    if name is None:
        raise bad("fileName", "fileName is required", "MissingField")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise bad("fileName", "fileName must be a string of 1-255 characters")
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise bad("fileName", "fileName must not contain '/' or '\\' or be '.' or '..'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise bad("fileName", "fileName must not contain control characters")
    ctype = doc.get("contentType")
    if ctype is None:
        raise bad("contentType", "contentType is required", "MissingField")
    if not isinstance(ctype, str) or not _CONTENT_TYPE.match(ctype):
        raise bad("contentType", "contentType must be a media type like image/png")
    return name, ctype.lower()


def same_media_type(given: str | None, expected: str) -> bool:
    """``given`` (a Content-Type header, parameters allowed) names the ``expected`` type."""
    if not given:
        return False
    return given.split(";", 1)[0].strip().lower() == expected


class FileLinkService:
    """Mints upload links for things and receives the uploads."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        signer: UrlSigner,
        *,
        base_url: Callable[[], str],
        backend: Literal["local", "s3"],
        s3_direct: bool,
        ttl_seconds: int,
        max_upload_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.store = store
        self._signer = signer
        self._base_url = base_url
        self._backend = backend
        self._direct = backend == "s3" and s3_direct
        self._ttl = ttl_seconds
        #: CreateFileUploadLink requests by outcome: ``accepted``, the rejected reply's
        #: ``errorCode``, or ``not_a_thing`` (plain counters read by the metrics collector).
        self.links: Counter[str] = Counter()
        self.max_upload_bytes = max_upload_bytes
        self._clock = clock

    # -- MQTT ----------------------------------------------------------------------------------
    async def handle(self, request: DeviceRequest) -> HandlerResult:
        """The CreateFileUploadLink handler: replies on ``<thing>`` and ``…/accepted``."""
        identity = request.identity
        if not isinstance(identity, ThingIdentity):
            self.links["not_a_thing"] += 1
            return HandlerResult(puback=ReasonCode.NOT_AUTHORIZED)
        thing = identity.thing_name
        try:
            file_name, content_type = parse_link_request(request.payload)
        except PayloadRejected as exc:
            self.links[exc.error_code] += 1
            reply = rejected_reply(thing, "CreateFileUploadLink", 400, exc.error_code, exc.message)
            return HandlerResult(replies=(reply,), puback=ReasonCode.PAYLOAD_FORMAT_INVALID)
        try:
            url, file_id, expires_at = await self.create_link(
                identity.project, thing, file_name, content_type
            )
        except Exception as exc:
            log.error("creating an upload link failed: %s", type(exc).__name__)
            self.links["InternalFailure"] += 1
            reply = rejected_reply(
                thing, "CreateFileUploadLink", 500, "InternalFailure", "no link could be created"
            )
            return HandlerResult(replies=(reply,), puback=ReasonCode.UNSPECIFIED_ERROR)
        body = _json({"uploadUrl": url, "fileId": file_id, "expiresAt": expires_at})
        self.links["accepted"] += 1
        return HandlerResult(
            replies=(
                Reply(thing, body, to="subscribers"),
                Reply(f"{thing}/CreateFileUploadLink/accepted", body, to="subscribers"),
            )
        )

    async def create_link(
        self, project: str, thing: str, file_name: str, content_type: str
    ) -> tuple[str, str, int]:
        """Record a pending link and return ``(uploadUrl, fileId, expiresAt)``."""
        now = self._clock()
        file_id = uuid.uuid4().hex
        expires_at = int(now) + self._ttl
        key = f"uploads/{file_id}"
        link = repo.UploadLink(
            id=file_id,
            project=project,
            thing_name=thing,
            file_name=file_name,
            content_type=content_type,
            object_key=key,
            backend=self._backend,
            created_at=now,
            expires_at=float(expires_at),
            used_at=None,
            state="pending",
        )
        if self._direct:
            assert isinstance(self.store, S3ObjectStore)
            url = await self.store.presign_put(key, content_type=content_type, expires_in=self._ttl)
        else:
            path = UPLOAD_PATH + file_id
            query = self._signer.sign("PUT", path, expires_at, {"thing": thing})
            url = f"{self._base_url()}{path}?{query}"
        async with self.db.transaction() as conn:
            await repo.insert_link(conn, link)
        return url, file_id, expires_at

    # -- HTTP ----------------------------------------------------------------------------------
    async def check_upload(
        self,
        file_id: str,
        query: Mapping[str, str],
        content_type: str | None,
        content_length: int | None,
    ) -> repo.UploadLink:
        """Every check that needs no body; raises :class:`UploadRefused`. Does not claim."""
        if not _FILE_ID.match(file_id):
            raise UploadRefused(404, "NotFound", "no such upload link")
        try:
            claims = self._signer.verify("PUT", UPLOAD_PATH + file_id, query, self._clock())
        except LinkExpired:
            raise UploadRefused(403, "LinkExpired", "the upload link has expired") from None
        except LinkInvalid:
            raise UploadRefused(403, "InvalidSignature", "the upload link is not valid") from None
        async with self.db.connect() as conn:
            link = await repo.get_link(conn, file_id)
        if link is None or link.thing_name != claims.get("thing"):
            raise UploadRefused(403, "InvalidSignature", "the upload link is not valid")
        if link.used_at is not None or link.state != "pending":
            raise UploadRefused(409, "LinkUsed", "the upload link was already used")
        if not same_media_type(content_type, link.content_type):
            raise UploadRefused(
                415,
                "ContentTypeMismatch",
                f"Content-Type must be {link.content_type}, as requested for this link",
            )
        if content_length is not None and content_length > self.max_upload_bytes:
            raise UploadRefused(
                413, "TooLarge", f"the file exceeds the limit of {self.max_upload_bytes} bytes"
            )
        return link

    async def receive_upload(
        self,
        file_id: str,
        query: Mapping[str, str],
        content_type: str | None,
        content_length: int | None,
        body: AsyncIterator[bytes],
    ) -> repo.FileRecord:
        """Check, claim, stream to storage and record the file; raises :class:`UploadRefused`."""
        link = await self.check_upload(file_id, query, content_type, content_length)
        async with self.db.transaction() as conn:
            if not await repo.claim_link(conn, file_id, self._clock()):
                raise UploadRefused(409, "LinkUsed", "the upload link was already used")
        try:
            stored = await self.store.put_stream(
                link.object_key,
                body,
                content_type=link.content_type,
                max_size=self.max_upload_bytes,
            )
            record = repo.FileRecord(
                id=link.id,
                project=link.project,
                thing_name=link.thing_name,
                file_name=link.file_name,
                content_type=link.content_type,
                size=stored.size,
                sha256=stored.sha256,
                object_key=link.object_key,
                backend=link.backend,
                created_at=self._clock(),
            )
            try:
                async with self.db.transaction() as conn:
                    await repo.insert_file(conn, record)
                    await repo.set_link_state(conn, link.id, "stored")
            except BaseException:
                await self.store.delete(link.object_key)
                raise
        except BaseException as exc:
            async with self.db.transaction() as conn:
                await repo.release_link(conn, file_id)
            if isinstance(exc, ObjectTooLarge):
                raise UploadRefused(
                    413, "TooLarge", f"the file exceeds the limit of {self.max_upload_bytes} bytes"
                ) from None
            raise
        return record

    # -- S3 direct mode ------------------------------------------------------------------------
    async def reconcile_s3(self) -> int:
        """Settle pending direct-S3 links: record arrived files, expire the rest. Returns the
        number of files recorded."""
        if not self._direct:
            return 0
        recorded = 0
        now = self._clock()
        async with self.db.connect() as conn:
            links = await repo.pending_links(conn, "s3")
        for link in links:
            stat = await self.store.stat(link.object_key)
            if stat is None:
                if now > link.expires_at + 60:  # grace for an upload that began just in time
                    async with self.db.transaction() as conn:
                        await repo.set_link_state(conn, link.id, "expired")
                continue
            if stat.size > self.max_upload_bytes:
                await self.store.delete(link.object_key)
                async with self.db.transaction() as conn:
                    await repo.set_link_state(conn, link.id, "failed")
                continue
            digest = hashlib.sha256()
            async for chunk in self.store.open_range(link.object_key):
                digest.update(chunk)
            record = repo.FileRecord(
                id=link.id,
                project=link.project,
                thing_name=link.thing_name,
                file_name=link.file_name,
                content_type=link.content_type,
                size=stat.size,
                sha256=digest.hexdigest(),
                object_key=link.object_key,
                backend=link.backend,
                created_at=now,
            )
            async with self.db.transaction() as conn:
                await repo.insert_file(conn, record)
                await repo.set_link_state(conn, link.id, "stored")
            recorded += 1
        return recorded
