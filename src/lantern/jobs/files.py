"""Files a job document may name: the images of the firmware catalog (any file uploaded with
``lantern firmware upload``), in ``${aws:iot:s3-presigned-url:<url>}`` placeholders and as a
job's ``documentSource``.

A file URL is one of:

* ``lantern://firmware/<firmware-id>``;
* ``s3://<bucket>/<key>`` whose key ends in ``firmware/<firmware-id>``, when the object store
  is S3 and ``<bucket>`` is its bucket (the object the catalog stored).

Anything else names no file Lantern stores and is refused when the job is created.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lantern.jobs.errors import JobsError

PLACEHOLDER = re.compile(r"\$\{aws:iot:s3-presigned-url:([^}\s]{1,1350})\}")
_LANTERN = re.compile(r"^lantern://firmware/(fw-[0-9a-f]{1,32})$")
_S3 = re.compile(r"^s3://([a-z0-9.-]{3,63})/(?:.*/)?firmware/(fw-[0-9a-f]{1,32})$")
MAX_PLACEHOLDERS = 10  # AWS: up to 10 substitutions in a document


class FileUrls:
    """Turns a file URL into the catalog's firmware id (``s3_bucket``: the object store's
    bucket, None when files are stored locally)."""

    def __init__(self, s3_bucket: str | None = None) -> None:
        self.s3_bucket = s3_bucket

    def firmware_id(self, url: str) -> str:
        """The firmware id ``url`` names; raises :class:`JobsError` naming the accepted forms."""
        found = _LANTERN.match(url)
        if found is not None:
            return found.group(1)
        found = _S3.match(url)
        if found is not None and self.s3_bucket is not None and found.group(1) == self.s3_bucket:
            return found.group(2)
        bucket = f"s3://{self.s3_bucket}/firmware/<firmware-id> or " if self.s3_bucket else ""
        raise JobsError(
            f"{url[:200]} names no file Lantern stores; use {bucket}"
            "lantern://firmware/<firmware-id> (upload it with `lantern firmware upload FILE "
            "--version V`)"
        )


def strings(document: Any) -> Iterator[str]:
    """Every string of a JSON value (keys excluded)."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from strings(value)


def placeholder_urls(document: Any) -> list[str]:
    """The URLs of the document's presigned-URL placeholders, in order."""
    return [m.group(1) for text in strings(document) for m in PLACEHOLDER.finditer(text)]


def substitute(document: Any, url_for: Any) -> Any:
    """``document`` with each placeholder replaced by ``url_for(<url>)``."""
    if isinstance(document, str):
        if "${aws:iot:s3-presigned-url:" not in document:
            return document
        return PLACEHOLDER.sub(lambda m: str(url_for(m.group(1))), document)
    if isinstance(document, dict):
        return {k: substitute(v, url_for) for k, v in document.items()}
    if isinstance(document, list):
        return [substitute(v, url_for) for v in document]
    return document
