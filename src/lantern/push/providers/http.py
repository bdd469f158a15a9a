"""Shared HTTP plumbing of the HTTP-based providers (APNs, FCM, Slack)."""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from collections.abc import Mapping
from pathlib import Path

import certifi
import httpx

from lantern.push.providers.base import TemporaryFailure

# These libraries log request headers (provider JWTs, OAuth tokens) at DEBUG and URLs holding
# device tokens at INFO. Secrets must never reach logs, so they speak only about problems.
for _name in ("hpack", "h2", "httpcore", "httpx"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """System-grade verification (certifi roots) plus an optional extra CA (stand-ins)."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def make_client(
    *, http2: bool, ca_file: Path | None, timeout: float, max_connections: int = 10
) -> httpx.AsyncClient:
    """One long-lived client per provider host: connections stay open and, over HTTP/2, one
    connection multiplexes every concurrent request."""
    return httpx.AsyncClient(
        http2=http2,
        verify=ssl_context(ca_file),
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=None,
        ),
        trust_env=False,
    )


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None when absent/invalid."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def transport_failure(exc: httpx.HTTPError) -> TemporaryFailure:
    """A network-level error (connect, TLS, timeout, reset) as a retryable failure."""
    return TemporaryFailure(type(exc).__name__)
