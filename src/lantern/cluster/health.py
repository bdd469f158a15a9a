"""Is this node fit to take connections? The database answers and NATS is connected.

:class:`NatsProbe` is the small interface readiness needs from NATS. :class:`NatsConnection`
is this package's own (a connection kept open only to be checked); a node whose MQTT routing
already holds a NATS connection can offer that one instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, Protocol

import nats
from nats.aio.client import Client as NatsClient
from sqlalchemy import text

from lantern.errors import LanternError
from lantern.settings.cluster import ClusterSettings
from lantern.store import Database

__all__ = [
    "NatsConnection",
    "NatsProbe",
    "NatsUnavailable",
    "database_problem",
    "nats_connect_options",
]

log = logging.getLogger("lantern.cluster")
CHECK_TIMEOUT = 2
START_TIMEOUT = 10.0


class NatsUnavailable(LanternError):
    """The NATS server cannot be reached at start."""

    http_status = 503
    code = "ServiceUnavailable"


class NatsProbe(Protocol):
    async def problem(self) -> str | None:
        """None when NATS is connected and answers, else what is wrong (no secrets)."""
        ...


def nats_connect_options(cfg: ClusterSettings, name: str) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` from the ``[cluster]`` settings (servers,
    credentials, TLS), reconnecting for ever."""
    assert cfg.nats_url is not None
    options: dict[str, Any] = {
        "servers": [s.strip() for s in cfg.nats_url.split(",") if s.strip()],
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "ping_interval": 5,
        "max_outstanding_pings": 2,
        "connect_timeout": 3,
    }
    if cfg.nats_user:
        options["user"] = cfg.nats_user
    if cfg.nats_password is not None:
        options["password"] = cfg.nats_password.get_secret_value()
    if cfg.nats_token is not None:
        options["token"] = cfg.nats_token.get_secret_value()
    if cfg.nats_creds_file:
        options["user_credentials"] = cfg.nats_creds_file
    if cfg.nats_tls_ca:
        options["tls"] = ssl.create_default_context(cafile=cfg.nats_tls_ca)
    return options


def _servers(cfg: ClusterSettings) -> str:
    """The NATS URLs without any user:password part, for messages."""
    shown = []
    for url in (cfg.nats_url or "").split(","):
        scheme, sep, rest = url.strip().rpartition("://")
        shown.append(f"{scheme}{sep}{rest.rpartition('@')[2]}")
    return ", ".join(shown)


class NatsConnection:
    """A NATS connection opened at start (refusing to start without NATS) and checked with a
    round trip; its disconnects and reconnects are logged."""

    def __init__(self, cfg: ClusterSettings, name: str) -> None:
        self._cfg = cfg
        self._name = name
        self._nc: NatsClient | None = None
        self._closing = False

    async def connect(self) -> None:
        async def disconnected() -> None:
            if self._closing:
                return
            log.error("NATS connection lost (%s); reconnecting", _servers(self._cfg))

        async def reconnected() -> None:
            log.info("NATS connection restored (%s)", _servers(self._cfg))

        async def error(exc: Exception) -> None:
            log.debug("NATS: %s", type(exc).__name__)

        options = nats_connect_options(self._cfg, self._name)
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    **options,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                ),
                timeout=START_TIMEOUT,
            )
        except Exception as exc:
            why = (
                f"no answer within {START_TIMEOUT:g} s"
                if isinstance(exc, TimeoutError)
                else (f"{type(exc).__name__}: {exc}")
            )
            raise NatsUnavailable(
                f"cannot connect to NATS at {_servers(self._cfg)} ({why}); check "
                "cluster.nats_url (LANTERN_CLUSTER__NATS_URL) and that the NATS server runs"
            ) from None

    async def problem(self) -> str | None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return f"not connected to NATS at {_servers(self._cfg)}"
        try:
            await nc.flush(timeout=CHECK_TIMEOUT)
        except Exception as exc:
            return f"NATS at {_servers(self._cfg)} does not answer ({type(exc).__name__})"
        return None

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        self._closing = True
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), timeout=5.0)


async def database_problem(db: Database) -> str | None:
    """None when the database answers ``SELECT 1`` within the timeout."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"the database does not answer ({type(exc).__name__})"
    return None
