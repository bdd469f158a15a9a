"""Job documents as devices receive them: the firmware link minted fresh on every send.

A firmware job's stored document holds ``operation``, ``deploymentId``, ``firmwareId``,
``firmwareVersion``, ``sha256`` and ``size`` (docs/device-topics.md);
:meth:`DocumentRenderer.render` adds ``firmwareUrl``, a signed, expiring link to the image
(describe, start-next, notify-next, update with includeJobDocument), so a device never holds a
link older than one send.

A generic job's document is sent as stored, except that each
``${aws:iot:s3-presigned-url:<file url>}`` placeholder (:mod:`lantern.jobs.files`) becomes a
signed, expiring link to that file for this thing and job (expiring after the job's
``presignedUrlConfig.expiresInSec``, else the firmware link lifetime), minted on every send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lantern.jobs.clock import Clock
from lantern.jobs.files import substitute
from lantern.store.jobs import ExecutionRecord
from lantern.store.signing import UrlSigner

FIRMWARE_OPERATION = "firmware_update"
THING_CLAIM = "thing"
JOB_CLAIM = "job"


def firmware_download_path(firmware_id: str) -> str:
    """The HTTP path of a firmware image (served by :mod:`lantern.api.firmware`)."""
    return f"/v1/firmware/{firmware_id}/image"


class DocumentRenderer:
    """Turns a stored job document into the one sent to a device."""

    def __init__(
        self,
        signer: UrlSigner,
        base_url: Callable[[], str],
        ttl_seconds: int,
        clock: Clock,
    ) -> None:
        self._signer = signer
        self._base_url = base_url
        self._ttl = ttl_seconds
        self._clock = clock

    def firmware_url(
        self, firmware_id: str, thing_name: str, job_id: str, ttl: int | None = None
    ) -> str:
        path = firmware_download_path(firmware_id)
        expires_at = int(self._clock.now()) + (self._ttl if ttl is None else ttl)
        query = self._signer.sign(
            "GET", path, expires_at, {THING_CLAIM: thing_name, JOB_CLAIM: job_id}
        )
        return f"{self._base_url().rstrip('/')}{path}?{query}"

    def render(self, execution: ExecutionRecord) -> dict[str, Any]:
        options = execution.job_options
        if options and options.get("files"):
            return self._substituted(execution, options)
        document = dict(execution.document)
        if execution.firmware_id is not None:
            document["firmwareUrl"] = self.firmware_url(
                execution.firmware_id, execution.thing_name, execution.job_id
            )
        return document

    def _substituted(self, execution: ExecutionRecord, options: dict[str, Any]) -> dict[str, Any]:
        files: dict[str, str] = options["files"]
        ttl = options.get("presignedExpiresInSec")

        def url_for(url: str) -> str:
            firmware_id = files.get(url)
            if firmware_id is None:  # not checked at creation (cannot happen): left as it was
                return f"${{aws:iot:s3-presigned-url:{url}}}"
            return self.firmware_url(firmware_id, execution.thing_name, execution.job_id, ttl)

        rendered = substitute(execution.document, url_for)
        assert isinstance(rendered, dict)
        return rendered
