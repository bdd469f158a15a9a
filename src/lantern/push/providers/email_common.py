"""What both email providers accept: ``{subject, body (HTML), text?}`` to one address.

The caller cannot add Cc, Bcc, Reply-To, From or headers (the legacy gateway let callers set
them: an open relay); such fields are refused by name rather than silently dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lantern.push.errors import PayloadTooLarge, PushRequestInvalid

_ADDRESS_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$"
)
_ALLOWED = frozenset({"subject", "body", "text"})
_MAX_BYTES = 256 * 1024
_TAG_RE = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    html: str
    text: str


def check_address(address: str) -> str:
    if len(address) > 254 or not _ADDRESS_RE.match(address):
        raise PushRequestInvalid("device_token", "not a single e-mail address (mailto:<address>)")
    return address


def email_content(payload: Mapping[str, Any]) -> EmailContent:
    for name in payload:
        if name not in _ALLOWED:
            raise PushRequestInvalid(
                f"payload.{name}",
                "not allowed: an e-mail has subject, body (HTML) and text; recipients, sender "
                "and reply address are fixed by the gateway",
            )
    subject = payload.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise PushRequestInvalid("payload.subject", "must be a non-empty string")
    if "\r" in subject or "\n" in subject or len(subject) > 998:
        raise PushRequestInvalid("payload.subject", "must be one line of at most 998 characters")
    body = payload.get("body")
    if not isinstance(body, str) or not body:
        raise PushRequestInvalid("payload.body", "must be a non-empty string (HTML)")
    text = payload.get("text")
    if text is None:
        text = html.unescape(_TAG_RE.sub("", body))
    elif not isinstance(text, str):
        raise PushRequestInvalid("payload.text", "must be a string")
    if len(body.encode()) + len(text.encode()) > _MAX_BYTES:
        raise PayloadTooLarge("payload", f"e-mails are limited to {_MAX_BYTES} bytes")
    return EmailContent(subject, body, text)
