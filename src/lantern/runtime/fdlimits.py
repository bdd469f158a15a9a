"""File descriptors: raise the soft limit, and split it between the listeners.

Every accepted connection holds a descriptor. When one listener may accept until the process
runs out (``EMFILE``), a flood of idle connections to it — 20,000 half-sent HTTP requests, say —
leaves nothing for the others: new mTLS MQTT connections and ``/healthz`` fail. So
``lantern serve`` raises the soft ``RLIMIT_NOFILE`` to the hard limit, keeps a reserve for
Lantern itself (database, provider and hook connections, files, pipes), and gives each listener
a connection cap such that all of them together fit in the rest.

Caps set explicitly (``mqtt.max_connections``, ``http.max_connections``) are kept; when they
alone do not fit, startup fails naming them. Caps left at their defaults are lowered where
needed, by max-min fairness: listeners that ask for little get it, the others share the rest
equally (in descriptors). An HTTP connection counts twice: it may hold a file it uploads or
downloads besides its socket.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass

from lantern.errors import ConfigError
from lantern.settings import Settings

__all__ = [
    "Demand",
    "Plan",
    "current_limit",
    "fit_settings",
    "open_descriptors",
    "plan_caps",
    "raise_nofile_limit",
]

#: Listeners never get less than this many connections (else startup fails).
MIN_CONNECTIONS = 16
#: Used when the hard limit is "unlimited" (Linux refuses more than fs.nr_open anyway).
UNLIMITED_FALLBACK = 1_048_576


@dataclass(frozen=True)
class Demand:
    """Listeners sharing one cap setting: ``listeners`` of them, each wanting ``requested``
    connections of ``weight`` descriptors; ``explicit`` when the operator set the cap."""

    setting: str
    names: tuple[str, ...]
    requested: int
    explicit: bool
    weight: int = 1


@dataclass(frozen=True)
class Plan:
    """The caps chosen (per listener, by setting) and how the descriptors were split."""

    limit: int
    reserved: int
    caps: dict[str, int]

    def describe(self, demands: Sequence[Demand]) -> str:
        """One line for the banner and the log."""
        parts = []
        for d in demands:
            cap = self.caps[d.setting]
            note = "" if cap == d.requested else f", {d.setting} {d.requested} lowered to fit"
            parts.append(f"{'/'.join(d.names)} {cap}{note}")
        return (
            f"limit {self.limit}, {self.reserved} kept for Lantern; connections per listener: "
            + "; ".join(parts)
        )


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; returns (old soft, new soft)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_FALLBACK if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft  # e.g. macOS caps the soft limit lower: keep what we have
        return soft, target
    return soft, soft


def open_descriptors() -> int:
    """Descriptors this process has open now (0 when the system does not say)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory))
        except OSError:
            continue
    return 0


def plan_caps(limit: int, open_now: int, demands: Sequence[Demand]) -> Plan:
    """Connection caps for ``demands`` within ``limit`` descriptors (``open_now`` in use).

    Raises :class:`ConfigError` when the explicit caps do not fit or a listener would get fewer
    than :data:`MIN_CONNECTIONS`.
    """
    reserved = open_now + max(64, min(512, limit // 8))
    available = limit - reserved
    caps: dict[str, int] = {}
    explicit = [d for d in demands if d.explicit]
    used = sum(len(d.names) * d.requested * d.weight for d in explicit)
    if used > available:
        settings = ", ".join(f"{d.setting} = {d.requested}" for d in explicit)
        raise ConfigError(
            f"{settings} need {used} file descriptors, but only {available} of the limit "
            f"{limit} are left after {reserved} kept for Lantern itself: raise the hard limit "
            "(ulimit -Hn, systemd LimitNOFILE=) or lower those settings"
        )
    for d in explicit:
        caps[d.setting] = d.requested
    remaining = available - used
    pending = sorted((d for d in demands if not d.explicit), key=lambda d: d.requested * d.weight)
    while pending:
        share = remaining // sum(len(d.names) for d in pending)  # descriptors per listener
        first = pending[0]
        if first.requested * first.weight <= share:
            caps[first.setting] = first.requested
            remaining -= len(first.names) * first.requested * first.weight
            pending.pop(0)
            continue
        for d in pending:
            caps[d.setting] = share // d.weight
        break
    for d in demands:
        if caps[d.setting] < MIN_CONNECTIONS:
            raise ConfigError(
                f"the file descriptor limit {limit} leaves {caps[d.setting]} connections for "
                f"{'/'.join(d.names)} ({d.setting}); at least {MIN_CONNECTIONS} are needed: "
                "raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower other caps"
            )
    return Plan(limit=limit, reserved=reserved, caps=caps)


def current_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` in force."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return UNLIMITED_FALLBACK if soft == resource.RLIM_INFINITY else soft


def fit_settings(settings: Settings, limit: int, open_now: int) -> tuple[Settings, str]:
    """``settings`` with ``mqtt.max_connections`` and ``http.max_connections`` fitted to
    ``limit`` by :func:`plan_caps`, and a line saying what was chosen."""
    mqtt, http = settings.mqtt, settings.http
    mqtt_listeners = ["mqtts"]
    for name, port in (("mqtt-alpn", mqtt.alpn_port), ("tcp", mqtt.tcp_port), ("ws", mqtt.ws_port)):
        if port is not None:
            mqtt_listeners.append(name)
    demands = [
        Demand(
            "mqtt.max_connections",
            tuple(mqtt_listeners),
            mqtt.max_connections,
            "max_connections" in mqtt.model_fields_set,
        ),
        Demand(
            "http.max_connections",
            ("http",),
            http.max_connections,
            "max_connections" in http.model_fields_set,
            weight=2,
        ),
    ]
    plan = plan_caps(limit, open_now, demands)
    fitted = settings.model_copy(
        update={
            "mqtt": mqtt.model_copy(update={"max_connections": plan.caps["mqtt.max_connections"]}),
            "http": http.model_copy(update={"max_connections": plan.caps["http.max_connections"]}),
        }
    )
    return fitted, plan.describe(demands)
