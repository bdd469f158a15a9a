"""Throttling of failed MQTT authentications, per source address and per user name (sans-I/O).

Policy (fixed windows, refusal at once): a key's first failure opens a window of ``window``
seconds; once the key has ``limit`` failures in its window, every further attempt of that key is
refused at once, without checking credentials (CONNACK 0x8A Banned, 3.1.1 return code 5), until
the window ends. So a source address gets at most ``max_per_address`` password checks (and a
user name at most ``max_per_user``, from any address) per window. A success clears the counter
of its user name (not that of its address: successes with one's own account must not buy more
guesses at others'). Refused attempts do not extend the window. A limit of 0 turns that
throttle off.

The trade-off of the per-user limit: someone who knows a user name can keep that account
refused for a window at a time (a guessing attacker is slowed to ``max_per_user`` guesses per
window in exchange).

Memory: each table holds at most ``max_entries`` keys. Keys sit in the order their window
opened, so when a table is full the oldest window (usually already over) is forgotten first;
forgetting one still open is counted in ``evicted`` (an attacker with that many addresses or
user names gets a fresh count for the forgotten ones, but the tables never grow). IPv6 sources
are counted per /64 network (one host usually has a whole /64 to pick addresses from).

No clock of its own: ``clock`` (monotonic seconds) is a parameter, so tests use a fake one.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["AuthStats", "AuthThrottle", "FailureTable", "source_key"]


@dataclass(slots=True)
class AuthStats:
    """Counts of refused authentications.

    ``failures`` by reason: ``password`` (wrong user name or password), ``certificate``
    (certificate refused), ``anonymous`` (no user name where anonymous access is off), ``busy``
    (password checks all busy), ``error``. ``throttled`` by the throttle that refused the
    attempt: ``address`` or ``user``.
    """

    failures: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)


class FailureTable:
    """Failures per key in fixed windows; at most ``max_entries`` keys are remembered."""

    __slots__ = ("_entries", "evicted", "limit", "max_entries", "window")

    def __init__(self, limit: int, window: float, max_entries: int) -> None:
        if limit < 0 or window <= 0 or max_entries < 1:
            raise ValueError("limit >= 0, window > 0 and max_entries >= 1 are required")
        self.limit = limit
        self.window = window
        self.max_entries = max_entries
        self.evicted = 0  # keys forgotten while their window was still open
        # key -> [window end, failures]; insertion order = order in which windows opened
        self._entries: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def blocked(self, key: str, now: float) -> bool:
        """True while ``key`` has ``limit`` failures in a window that is not over."""
        if not self.limit:
            return False
        entry = self._entries.get(key)
        return entry is not None and now < entry[0] and entry[1] >= self.limit

    def failed(self, key: str, now: float) -> bool:
        """Count one failure of ``key``; True if it just reached the limit (now blocked)."""
        if not self.limit:
            return False
        entries = self._entries
        entry = entries.get(key)
        if entry is not None and now < entry[0]:
            entry[1] += 1
            return entry[1] == self.limit
        if entry is not None:
            del entries[key]  # its window is over: a new one opens, at the end of the order
        while len(entries) >= self.max_entries:
            oldest = next(iter(entries))
            if entries.pop(oldest)[0] > now:
                self.evicted += 1
        entries[key] = [now + self.window, 1]
        return self.limit == 1

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures."""
        self._entries.pop(key, None)


class AuthThrottle:
    """Per-address and per-user failure tables (see the module docstring)."""

    __slots__ = ("addresses", "clock", "users", "window")

    def __init__(
        self,
        *,
        window: float = 60.0,
        max_per_address: int = 30,
        max_per_user: int = 10,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.addresses = FailureTable(max_per_address, window, max_entries)
        self.users = FailureTable(max_per_user, window, max_entries)
        self.clock = clock

    def refused(self, address: str, user: str | None) -> str | None:
        """Which throttle refuses this attempt now: ``"address"``, ``"user"``, or None."""
        now = self.clock()
        if self.addresses.blocked(address, now):
            return "address"
        if user is not None and self.users.blocked(user, now):
            return "user"
        return None

    def failed(self, address: str, user: str | None) -> list[str]:
        """Count a failed authentication of ``user`` (None: no user name) from ``address``;
        returns which of ``"address"`` and ``"user"`` this failure blocked (for a log line)."""
        now = self.clock()
        blocked = ["address"] if self.addresses.failed(address, now) else []
        if user is not None and self.users.failed(user, now):
            blocked.append("user")
        return blocked

    def succeeded(self, user: str | None) -> None:
        """A successful authentication clears its user name's failures."""
        if user is not None:
            self.users.clear(user)


def source_key(remote_address: str) -> str:
    """The throttling key of a ``host:port`` / ``[v6]:port`` peer: the IPv4 address, or the
    IPv6 /64 network (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    host = remote_address
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
