"""What the operation modules share: their dependencies, pagination, ARNs and ids."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lantern.iam.errors import AwsError
from lantern.jobs.generic import JobService
from lantern.pki import CertificateAuthority
from lantern.store import Database

__all__ = [
    "AwsDeps",
    "certificate_id_of",
    "decode_token",
    "encode_token",
    "invalid",
    "not_found",
    "page",
    "page_size",
    "thing_id",
]

T = TypeVar("T")
_IDS = uuid.UUID("6d1f7c1e-5b4a-4c39-9a53-4c616e746572")


@dataclass
class AwsDeps:
    """What the handlers use: the database, the CA, where devices connect, and how to close
    the live connections of certificates just deactivated or revoked."""

    db: Database
    ca: CertificateAuthority
    mqtt_endpoint: Callable[[], str]
    http_endpoint: Callable[[], str]
    kick: Callable[[Collection[str]], int] | None = None
    # Generic jobs (lantern.awsapi.jobs): the service, and what to call after a change so
    # devices are notified at once (the jobs timer's tick).
    jobs: JobService | None = None
    jobs_changed: Callable[[], Awaitable[object]] | None = None


def invalid(message: str) -> AwsError:
    return AwsError("InvalidRequestException", message, 400)


def not_found(message: str) -> AwsError:
    return AwsError("ResourceNotFoundException", message, 404)


def thing_id(name: str) -> str:
    """A stable id for a thing (AWS's thingId): Lantern names things, so it derives from the
    name."""
    return str(uuid.uuid5(_IDS, name))


def certificate_id_of(principal: str) -> str:
    """The certificate id of a principal: a certificate ARN (``arn:aws:iot:...:cert/<id>``) or
    the bare id."""
    if principal.startswith("arn:"):
        resource = principal.split(":", 5)[-1]
        kind, _, cert = resource.partition("/")
        if kind != "cert" or not cert:
            raise invalid(f"principal {principal} is not a certificate ARN (…:cert/<id>)")
        return cert
    return principal


def encode_token(*parts: object) -> str:
    """An opaque token holding where the next page starts."""
    text = "\x1f".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_token(token: str, count: int) -> list[str]:
    """The ``count`` parts of a token made by :func:`encode_token`."""
    try:
        parts = base64.urlsafe_b64decode(token.encode()).decode().split("\x1f")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid("the nextToken is invalid") from None
    if len(parts) != count:
        raise invalid("the nextToken is invalid")
    return parts


def page_size(size: int | None, default: int = 50, limit: int = 250) -> int:
    count = default if size is None else size
    if not 1 <= count <= limit:
        raise invalid(f"the page size must be between 1 and {limit}")
    return count


def page(
    items: Sequence[T], token: str | None, size: int | None, default: int = 50, limit: int = 250
) -> tuple[list[T], str | None]:
    """One page of ``items`` from ``token`` (an opaque offset), and the next page's token."""
    count = page_size(size, default, limit)
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
        except (binascii.Error, UnicodeError, ValueError):
            raise invalid("the nextToken is invalid") from None
    chunk = list(items[start : start + count])
    more = start + count < len(items)
    return chunk, base64.urlsafe_b64encode(f"o:{start + count}".encode()).decode() if more else None
