"""When a schedule fires: local wall-clock rules turned into UTC instants, DST handled.

A rule is either a 5-field cron expression or a repeat interval with local times of day, both
evaluated on the participant's wall clock in an IANA time zone, then each local time is mapped to
one UTC instant. Unlike the legacy worker (which converted local times to UTC cron strings once and
drifted by an hour at every DST change), a reminder set for 09:00 stays at 09:00 local all year.

DST policy (also in the README):

* **Gap** (a local time that does not exist, e.g. 02:30 on a spring-forward night in New York):
  the occurrence fires at the first valid instant after it, i.e. the moment the clocks jump
  (03:00 local). Several local times inside one gap collapse into that single instant and fire
  once.
* **Overlap** (a local time that happens twice, e.g. 01:30 on a fall-back night): fires once, at
  the first occurrence (the earlier UTC instant, ``fold=0``). Consequently an hourly rule at :30
  skips the repeated hour: local 00:30, 01:30 (first), 02:30.

Repeat intervals (meaning taken from the legacy worker, times of day in local time):

====================  ==========================================================================
``hourly``            every hour at the minute of the time of day
``every3h``/``6h``/``12h``  every N hours, on the hours congruent to the time's hour modulo N
``daily``             every day at the time
``weekly``            every week on the weekday of ``start`` (local)
``biweekly``          Tuesday and Thursday
``triweekly``         Monday, Wednesday and Friday
``fortnightly``       every other week on the weekday of ``start``, starting with start's week
``monthly``           every month on the day of ``start``; clamped to the month's last day
``bimonthly``         the 10th and the 20th
``custom``            every day at each of several times
``none``              once, at ``start`` itself
====================  ==========================================================================

Every repeat except ``custom`` and ``none`` takes exactly one time of day (default: the local time
of ``start``); ``custom`` takes one or more; ``none`` takes none. Occurrences are never before
``start`` nor after ``end``.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from lantern.schedule.errors import ScheduleInvalid

REPEATS: Final[tuple[str, ...]] = (
    "hourly",
    "every3h",
    "every6h",
    "every12h",
    "daily",
    "weekly",
    "biweekly",
    "triweekly",
    "fortnightly",
    "monthly",
    "bimonthly",
    "custom",
    "none",
)
_EVERY_N_HOURS: Final = {"every3h": 3, "every6h": 6, "every12h": 12}
# How many candidate local times one next() may examine before giving up (a rule that cannot
# produce an instant, e.g. every candidate inside a DST gap already passed, is malformed).
_MAX_CANDIDATES: Final = 10_000
_PATTERN_DAYS: Final = 64  # every repeat pattern matches a day within this many


def load_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises :class:`ScheduleInvalid` (field ``timezone``)."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise ScheduleInvalid("timezone", f"{name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleInvalid(
            "timezone", f"{name!r} is not an IANA time zone name (e.g. America/New_York)"
        ) from None


def parse_times(values: Sequence[str]) -> tuple[time, ...]:
    """Local times of day ``"HH:MM"`` (24-hour); raises :class:`ScheduleInvalid` (``times``)."""
    out: list[time] = []
    for value in values:
        ok = isinstance(value, str) and len(value) == 5 and value[2] == ":"
        hh, mm = (value[:2], value[3:]) if ok else ("", "")
        if not (ok and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ScheduleInvalid("times", f"{value!r} is not a time of day HH:MM (00:00-23:59)")
        t = time(int(hh), int(mm))
        if t in out:
            raise ScheduleInvalid("times", f"{value!r} is listed twice")
        out.append(t)
    return tuple(sorted(out))


def format_times(times: Sequence[time]) -> str:
    return ",".join(t.strftime("%H:%M") for t in times)


def check_cron(expr: str) -> str:
    """A 5-field cron expression, normalised; raises :class:`ScheduleInvalid` (field ``cron``)."""
    fields = expr.split() if isinstance(expr, str) else []
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ScheduleInvalid(
            "cron",
            f"{expr!r} is not a 5-field cron expression (minute hour day month weekday)",
        )
    return " ".join(fields)


def local_wall_time(instant: float, tz: ZoneInfo) -> datetime:
    """The naive local wall-clock time at a UTC epoch instant."""
    return datetime.fromtimestamp(instant, tz).replace(tzinfo=None)


def resolve_local(naive: datetime, tz: ZoneInfo) -> int:
    """The UTC epoch second at which local wall time ``naive`` happens (DST policy above)."""
    first = naive.replace(tzinfo=tz, fold=0)
    instant = int(first.timestamp())
    if local_wall_time(instant, tz) == naive:
        return instant  # exists; fold=0 is the earlier of two in an overlap
    # In a gap: zoneinfo gives the pre- and post-transition readings; the transition lies
    # between them. Find the first instant whose wall time is not before ``naive``.
    other = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    lo, hi = min(instant, other), max(instant, other)
    while lo < hi:
        mid = (lo + hi) // 2
        if local_wall_time(mid, tz) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True, slots=True)
class _Pattern:
    """Local wall times at ``minute`` past each of ``hours`` (ascending) on the days allowed by
    ``weekdays`` (ISO: Monday 1 .. Sunday 7) and ``days`` (of the month); None: every day."""

    minute: int
    hours: tuple[int, ...]
    weekdays: frozenset[int] | None = None
    days: frozenset[int] | None = None

    def next_after(self, after: datetime) -> datetime:
        """The first matching wall time strictly after ``after`` (naive, local)."""
        day = after.date()
        for _ in range(_PATTERN_DAYS):
            if (self.weekdays is None or day.isoweekday() in self.weekdays) and (
                self.days is None or day.day in self.days
            ):
                for hour in self.hours:
                    candidate = datetime(day.year, day.month, day.day, hour, self.minute)
                    if candidate > after:
                        return candidate
            day += timedelta(days=1)
        raise AssertionError(f"{self} matches no day")  # every pattern matches within 31 days


@dataclass(frozen=True, slots=True)
class Rule:
    """A schedule's timing. Build with :meth:`build` (validates) or from stored fields."""

    timezone: ZoneInfo
    start_at: int
    end_at: int | None
    cron: str | None
    repeat: str | None
    times: tuple[time, ...]

    @classmethod
    def build(
        cls,
        *,
        timezone: str,
        start_at: int,
        end_at: int | None,
        cron: str | None,
        repeat: str | None,
        times: Sequence[time] | None,
    ) -> Rule:
        """Validate the combination; raises :class:`ScheduleInvalid` naming the field."""
        tz = load_timezone(timezone)
        if (cron is None) == (repeat is None):
            raise ScheduleInvalid(
                "repeat", "give exactly one of 'cron' and 'repeat'", "cron_or_repeat"
            )
        if end_at is not None and end_at <= start_at:
            raise ScheduleInvalid("end", "must be after start")
        chosen: tuple[time, ...] = tuple(times or ())
        if cron is not None:
            cron = check_cron(cron)
            if chosen:
                raise ScheduleInvalid("times", "not used with 'cron' (put the times in the cron)")
        elif repeat not in REPEATS:
            raise ScheduleInvalid("repeat", f"{repeat!r} is not one of {', '.join(REPEATS)}")
        elif repeat == "none":
            if chosen:
                raise ScheduleInvalid("times", "not used with repeat 'none' (it fires at start)")
        elif repeat == "custom":
            if not chosen:
                raise ScheduleInvalid("times", "repeat 'custom' needs one or more times of day")
        elif len(chosen) > 1:
            raise ScheduleInvalid("times", f"repeat {repeat!r} takes one time of day")
        elif not chosen:
            start_local = local_wall_time(start_at, tz)
            chosen = (time(start_local.hour, start_local.minute),)
        return cls(tz, start_at, end_at, cron, repeat, chosen)

    # -- local candidates -------------------------------------------------------------------

    def _start_local(self) -> datetime:
        return local_wall_time(self.start_at, self.timezone)

    def _patterns(self) -> list[_Pattern]:
        """The repeat interval as day/hour/minute sets (what its cron form would say)."""
        repeat, times = self.repeat, self.times
        t = times[0]
        m, h = t.minute, t.hour
        if repeat == "hourly":
            return [_Pattern(m, tuple(range(24)))]
        if repeat in _EVERY_N_HOURS:
            return [
                _Pattern(m, tuple(range(h % _EVERY_N_HOURS[repeat], 24, _EVERY_N_HOURS[repeat])))
            ]
        if repeat == "daily":
            return [_Pattern(m, (h,))]
        if repeat in ("weekly", "fortnightly"):
            return [_Pattern(m, (h,), weekdays=frozenset({self._start_local().isoweekday()}))]
        if repeat == "biweekly":
            return [_Pattern(m, (h,), weekdays=frozenset({2, 4}))]
        if repeat == "triweekly":
            return [_Pattern(m, (h,), weekdays=frozenset({1, 3, 5}))]
        if repeat == "bimonthly":
            return [_Pattern(m, (h,), days=frozenset({10, 20}))]
        if repeat == "custom":
            return [_Pattern(x.minute, (x.hour,)) for x in times]
        raise AssertionError(f"no pattern for repeat {repeat!r}")

    def _next_monthly(self, after: datetime) -> datetime:
        day, t = self._start_local().day, self.times[0]
        year, month = after.year, after.month
        while True:
            last = calendar.monthrange(year, month)[1]
            candidate = datetime(year, month, min(day, last), t.hour, t.minute)
            if candidate > after:
                return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def next_local(self, after: datetime) -> datetime | None:
        """The first local wall time strictly after ``after`` that the rule names."""
        if self.repeat == "monthly":
            return self._next_monthly(after)
        if self.cron is not None:
            try:
                found: datetime = croniter(self.cron, after).get_next(datetime)
            except Exception:  # croniter gives up on a never-matching day (Feb 30)
                return None
            return found
        # Repeat intervals are matched directly: croniter parses its expression on every call,
        # which dominated the scheduler's CPU when thousands of occurrences fell due at once.
        best = min(p.next_after(after) for p in self._patterns())
        if self.repeat == "fortnightly":
            start_day = self._start_local().date()
            while ((best.date() - start_day).days // 7) % 2:
                best += timedelta(days=7)
        return best

    # -- UTC instants -----------------------------------------------------------------------

    def next_after(self, instant: float) -> int | None:
        """The first occurrence (UTC epoch second) strictly after ``instant``, or None."""
        floor = max(int(instant // 1), self.start_at - 1)
        if self.repeat == "none":
            found: int | None = self.start_at if self.start_at > floor else None
        else:
            found = None
            candidate = self.next_local(local_wall_time(floor, self.timezone))
            for _ in range(_MAX_CANDIDATES):
                if candidate is None:
                    break
                at = resolve_local(candidate, self.timezone)
                if at > floor:  # skips the second pass of an overlap and collapsed gap times
                    found = at
                    break
                candidate = self.next_local(candidate)
        if found is None or (self.end_at is not None and found > self.end_at):
            return None
        return found

    def upcoming(self, after: float, count: int) -> list[int]:
        """Up to ``count`` occurrences strictly after ``after``."""
        out: list[int] = []
        cursor: float = after
        while len(out) < count:
            nxt = self.next_after(cursor)
            if nxt is None:
                break
            out.append(nxt)
            cursor = nxt
        return out


def iso_local(instant: int, tz: ZoneInfo) -> str:
    """``instant`` as ISO 8601 with the zone's offset at that instant (what a user reads)."""
    return datetime.fromtimestamp(instant, tz).isoformat()


def iso_utc(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat().replace("+00:00", "Z")
