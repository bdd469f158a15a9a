"""AWS Signature Version 4 verification, for requests signed as botocore (and every AWS SDK)
signs them: an ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
Signature=...`` header, or a presigned URL (``X-Amz-Algorithm``, ``X-Amz-Credential``,
``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``, ``X-Amz-Signature``).

The canonical request is rebuilt from the request *as sent*: the percent-encoded path (dot
segments and empty segments removed, then encoded once more, as for every service but S3), the
query pairs re-encoded with ``-_.~`` left alone and sorted, the signed headers trimmed and
joined, and the payload hash (``x-amz-content-sha256`` when sent, which must then match the
body unless it is ``UNSIGNED-PAYLOAD``; else the body's SHA-256; a presigned request without
that header may also be signed over ``UNSIGNED-PAYLOAD``). Any region is accepted; the service
in the credential scope must be one of :data:`SERVICES`. The request time may differ from the
server's by :data:`MAX_SKEW` seconds; a presigned URL is valid from its date for
``X-Amz-Expires`` seconds (at most 7 days). Signatures are compared in constant time.

Pure functions (no I/O): :func:`parse` reads what the request claims, the caller looks up the
key's secret, :func:`verify` checks it. Failures are :class:`~lantern.iam.errors.AwsError` with
AWS's exception names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

from lantern.iam.errors import (
    incomplete_signature,
    invalid_signature,
    missing_token,
)

__all__ = [
    "ALGORITHM",
    "MAX_SKEW",
    "SERVICES",
    "UNSIGNED_PAYLOAD",
    "HttpRequest",
    "Signature",
    "canonical_request",
    "expected_signature",
    "from_asgi",
    "parse",
    "signing_key",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICES = frozenset({"iot", "iotdata", "iot-data", "iot-jobs-data"})
MAX_SKEW = 300
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as received: ``path`` and ``query`` exactly as sent (percent-encoded),
    ``headers`` by lower-case name with every value in order."""

    method: str
    path: str
    query: str
    headers: Mapping[str, Sequence[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Signature:
    """What a request claims: who signed it, for which scope, over which headers."""

    key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    presigned: bool
    expires: int | None = None

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _authorization_fields(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise incomplete_signature(
            f"Authorization header requires the {ALGORITHM} algorithm (got {algorithm!r})"
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, field = item.strip().partition("=")
        if sep:
            fields[name] = field
    for required in ("Credential", "SignedHeaders", "Signature"):
        if required not in fields:
            raise incomplete_signature(f"Authorization header requires '{required}' parameter.")
    return fields


def _timestamp_from_headers(request: HttpRequest) -> str:
    amz = request.header("x-amz-date")
    if amz is not None:
        return amz.strip()
    date = request.header("date")
    if date is None:
        raise incomplete_signature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    try:
        parsed = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise incomplete_signature(f"Date header {date!r} is not an HTTP date") from None
    return parsed.astimezone(dt.UTC).strftime(_TIME_FORMAT)


def parse(request: HttpRequest) -> Signature:
    """The signature a request carries (header or presigned query); raises
    ``MissingAuthenticationTokenException`` when it carries none and
    ``IncompleteSignatureException`` when it is malformed."""
    authorization = request.header("authorization")
    query = dict(_query_pairs(request.query))
    if authorization is not None:
        fields = _authorization_fields(authorization)
        credential, signed, signature = (
            fields["Credential"],
            fields["SignedHeaders"],
            fields["Signature"],
        )
        timestamp, presigned, expires = _timestamp_from_headers(request), False, None
    elif "X-Amz-Algorithm" in query:
        missing = [p for p in _PRESIGN_PARAMS if p not in query]
        if missing:
            raise incomplete_signature(f"AWS query-string parameters missing: {', '.join(missing)}")
        if query["X-Amz-Algorithm"] != ALGORITHM:
            raise incomplete_signature(f"X-Amz-Algorithm must be {ALGORITHM}")
        credential, signed = query["X-Amz-Credential"], query["X-Amz-SignedHeaders"]
        signature, timestamp, presigned = query["X-Amz-Signature"], query["X-Amz-Date"], True
        try:
            expires = int(query.get("X-Amz-Expires", "900"))
        except ValueError:
            raise incomplete_signature("X-Amz-Expires must be a number of seconds") from None
        if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            raise incomplete_signature(
                f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds"
            )
    else:
        raise missing_token()
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise incomplete_signature(
            f"Credential should be scoped to a valid region, like "
            f"<key id>/<yyyymmdd>/<region>/<service>/aws4_request, not {credential!r}"
        )
    key_id, date, region, service, _ = parts
    if service not in SERVICES:
        raise incomplete_signature(
            f"Credential should be scoped to a correct service: one of "
            f"{', '.join(sorted(SERVICES))}, not {service!r}"
        )
    headers = tuple(signed.split(";"))
    if "host" not in headers:
        raise incomplete_signature("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    return Signature(
        key_id, date, region, service, headers, signature, timestamp, presigned, expires
    )


def _remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def _canonical_query(query: str, presigned: bool) -> str:
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in _query_pairs(query)
        if not (presigned and k == "X-Amz-Signature")
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(request: HttpRequest, names: Sequence[str]) -> str:
    lines = []
    for name in names:
        values = request.headers.get(name)
        if not values:
            raise invalid_signature(f"The signed header {name!r} is not in the request.")
        lines.append(f"{name}:" + ",".join(" ".join(v.split()) for v in values))
    return "\n".join(lines) + "\n"


def canonical_request(request: HttpRequest, sig: Signature, payload_hash: str) -> str:
    """The SigV4 canonical request of ``request`` as ``sig`` describes it."""
    return "\n".join(
        (
            request.method.upper(),
            quote(_remove_dot_segments(request.path), safe="/~"),
            _canonical_query(request.query, sig.presigned),
            _canonical_headers(request, sig.signed_headers),
            ";".join(sig.signed_headers),
            payload_hash,
        )
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def expected_signature(request: HttpRequest, sig: Signature, secret: str, payload_hash: str) -> str:
    canonical = canonical_request(request, sig, payload_hash)
    to_sign = "\n".join(
        (ALGORITHM, sig.timestamp, sig.scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    key = signing_key(secret, sig.date, sig.region, sig.service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _payload_hashes(request: HttpRequest, sig: Signature) -> list[str]:
    declared = request.header("x-amz-content-sha256")
    actual = hashlib.sha256(request.body).hexdigest()
    if declared is not None:
        if declared != UNSIGNED_PAYLOAD and not hmac.compare_digest(declared, actual):
            raise invalid_signature(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
        return [declared]
    return [actual, UNSIGNED_PAYLOAD] if sig.presigned else [actual]


def _check_time(sig: Signature, now: float) -> None:
    try:
        signed_at = dt.datetime.strptime(sig.timestamp, _TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise incomplete_signature(
            f"Date must be in ISO-8601 'basic format' (yyyyMMdd'T'HHmmss'Z'), got {sig.timestamp!r}"
        ) from None
    if sig.timestamp[:8] != sig.date:
        raise invalid_signature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP."
        )
    current = dt.datetime.fromtimestamp(now, dt.UTC)
    fmt = current.strftime
    skew = dt.timedelta(seconds=MAX_SKEW)
    if sig.presigned:
        assert sig.expires is not None
        ends = signed_at + dt.timedelta(seconds=sig.expires)
        if current > ends:
            raise invalid_signature(
                f"Signature expired: {ends.strftime(_TIME_FORMAT)} is now earlier than "
                f"{fmt(_TIME_FORMAT)}"
            )
    elif signed_at < current - skew:
        raise invalid_signature(
            f"Signature expired: {sig.timestamp} is now earlier than "
            f"{(current - skew).strftime(_TIME_FORMAT)} ({fmt(_TIME_FORMAT)} - 5 min.)"
        )
    if signed_at > current + skew:
        raise invalid_signature(
            f"Signature not yet current: {sig.timestamp} is still later than "
            f"{(current + skew).strftime(_TIME_FORMAT)} ({fmt(_TIME_FORMAT)} + 5 min.)"
        )


def verify(request: HttpRequest, sig: Signature, secret: str, now: float) -> None:
    """Raise ``InvalidSignatureException`` unless ``sig`` is ``secret``'s signature of
    ``request``, made within the allowed time."""
    _check_time(sig, now)
    given = sig.signature.lower()
    matched = False
    for payload_hash in _payload_hashes(request, sig):
        expected = expected_signature(request, sig, secret, payload_hash)
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise invalid_signature()


def from_asgi(scope: Mapping[str, Any], body: bytes) -> HttpRequest:
    """The request of an ASGI HTTP ``scope`` as SigV4 sees it: the path and query exactly as
    sent."""
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return HttpRequest(
        scope["method"],
        raw_path.decode("latin-1"),
        scope.get("query_string", b"").decode("latin-1"),
        headers,
        body,
    )
