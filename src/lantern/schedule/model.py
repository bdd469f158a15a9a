"""A schedule request, validated field by field, and how a schedule is shown to callers.

Request (JSON object, ``POST /schedules`` and ``lantern schedules create``)::

    {"activity_id": "...", "participant_id": "...",
     "destinations": ["apns:<hex>", "gcm:<token>", ...],
     "title": "...", "message": "...", "timezone": "America/New_York",
     "start": "2025-03-01T09:00:00" (local if no offset), "end": optional,
     "repeat": "daily", "times": ["09:00"]        -- or --   "cron": "0 9 * * 1-5"}

Every problem raises :class:`ScheduleInvalid` naming the field; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from lantern.schedule.errors import ScheduleInvalid
from lantern.schedule.rules import (
    Rule,
    format_times,
    iso_local,
    iso_utc,
    load_timezone,
    parse_times,
    resolve_local,
)
from lantern.store.schedule import OccurrenceRecord, ScheduleRecord

SCHEMES: Final = frozenset({"apns", "gcm", "fcm", "mailto", "sms", "slack"})
MAX_DESTINATIONS: Final = 20
_FIELDS: Final = frozenset(
    {
        "activity_id",
        "participant_id",
        "destinations",
        "title",
        "message",
        "timezone",
        "start",
        "end",
        "cron",
        "repeat",
        "times",
        # legacy callers put the key in the body (docs/push-api.md); read by authentication
        "api_key",
    }
)
_LIMITS: Final = {"activity_id": 128, "participant_id": 128, "title": 256, "message": 4000}


def canonical_scheme(destination: str) -> str:
    scheme = destination.split(":", 1)[0].lower()
    return "gcm" if scheme == "fcm" else scheme


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    activity_id: str
    participant_id: str
    destinations: tuple[str, ...]
    title: str
    message: str
    rule: Rule
    timezone: str


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise ScheduleInvalid(name, "is required", "missing_field")
    if not isinstance(value, str) or not value.strip():
        raise ScheduleInvalid(name, "must be a non-empty string")
    if len(value) > _LIMITS[name]:
        raise ScheduleInvalid(name, f"is longer than {_LIMITS[name]} characters")
    return value


def _destinations(value: Any) -> tuple[str, ...]:
    if value is None:
        raise ScheduleInvalid("destinations", "is required", "missing_field")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ScheduleInvalid("destinations", "must be a non-empty list of '<scheme>:<address>'")
    if len(value) > MAX_DESTINATIONS:
        raise ScheduleInvalid("destinations", f"at most {MAX_DESTINATIONS} per schedule")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or ":" not in item:
            raise ScheduleInvalid(
                "destinations", "each must be '<scheme>:<address>' (e.g. apns:<device token>)"
            )
        scheme, address = item.split(":", 1)
        if scheme.lower() not in SCHEMES:
            raise ScheduleInvalid(
                "destinations",
                f"unknown scheme {scheme[:16]!r} (use {', '.join(sorted(SCHEMES))})",
            )
        if not address.strip() or len(item) > 4096 or any(c.isspace() for c in item):
            raise ScheduleInvalid(
                "destinations", f"a {scheme.lower()}: address is empty or invalid"
            )
        if item in out:
            raise ScheduleInvalid("destinations", "a destination is listed twice")
        out.append(item)
    return tuple(out)


def parse_instant(value: Any, name: str, timezone: str) -> int:
    """ISO 8601 date-time; without an offset it is local time in ``timezone`` (DST policy)."""
    if not isinstance(value, str):
        raise ScheduleInvalid(name, "must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleInvalid(name, f"{value[:40]!r} is not an ISO 8601 date-time") from None
    if not 1970 <= parsed.year <= 2200:
        raise ScheduleInvalid(name, "year out of range 1970-2200")
    if parsed.tzinfo is None:
        return resolve_local(parsed.replace(microsecond=0), load_timezone(timezone))
    return int(parsed.timestamp())


def parse_request(body: Any, *, now: float) -> ScheduleSpec:
    """Validate a create request; raises :class:`ScheduleInvalid` for the first bad field."""
    if not isinstance(body, Mapping):
        raise ScheduleInvalid("body", "must be a JSON object", "invalid_json")
    for name in body:
        if name not in _FIELDS:
            raise ScheduleInvalid(str(name)[:64], "is not a schedule field", "unknown_field")
    activity_id = _text(body, "activity_id")
    participant_id = _text(body, "participant_id")
    destinations = _destinations(body.get("destinations"))
    title = _text(body, "title")
    message = _text(body, "message")
    timezone = body.get("timezone")
    if timezone is None:
        raise ScheduleInvalid("timezone", "is required (an IANA name)", "missing_field")
    if not isinstance(timezone, str):
        raise ScheduleInvalid("timezone", "must be an IANA time zone name")
    load_timezone(timezone)
    if body.get("start") is None:
        raise ScheduleInvalid("start", "is required", "missing_field")
    start_at = parse_instant(body["start"], "start", timezone)
    end_at = None if body.get("end") is None else parse_instant(body["end"], "end", timezone)
    cron, repeat, times = body.get("cron"), body.get("repeat"), body.get("times")
    if cron is not None and not isinstance(cron, str):
        raise ScheduleInvalid("cron", "must be a string")
    if repeat is not None and not isinstance(repeat, str):
        raise ScheduleInvalid("repeat", "must be a string")
    if times is not None and not (isinstance(times, list) and times):
        raise ScheduleInvalid("times", "must be a non-empty list of 'HH:MM'")
    rule = Rule.build(
        timezone=timezone,
        start_at=start_at,
        end_at=end_at,
        cron=cron,
        repeat=repeat,
        times=parse_times(times) if times else None,
    )
    if rule.next_after(now) is None:
        raise ScheduleInvalid(
            "start", "the schedule never fires after now (check start, end and the rule)"
        )
    return ScheduleSpec(activity_id, participant_id, destinations, title, message, rule, timezone)


def rule_of(record: ScheduleRecord) -> Rule:
    """The rule of a stored schedule."""
    return Rule.build(
        timezone=record.timezone,
        start_at=record.start_at,
        end_at=record.end_at,
        cron=record.cron,
        repeat=record.repeat,
        times=parse_times(record.times.split(",")) if record.times else None,
    )


def stored_times(rule: Rule) -> str | None:
    return format_times(rule.times) if rule.times else None


def mask(destination: str) -> str:
    """A destination shown without its secret part: scheme and the last 4 characters."""
    scheme, _, address = destination.partition(":")
    return f"{scheme}:…{address[-4:]}" if len(address) > 8 else f"{scheme}:…"


def schedule_view(
    record: ScheduleRecord, *, now: float, upcoming: int = 5, reveal: bool = True
) -> dict[str, Any]:
    """The JSON form of a schedule, with its next fire times (local, with offsets)."""
    rule = rule_of(record)
    tz = load_timezone(record.timezone)
    nxt: list[int] = []
    if record.next_fire_at is not None:
        nxt = [record.next_fire_at, *rule.upcoming(record.next_fire_at, upcoming - 1)]
    return {
        "id": record.id,
        "key_id": record.key_id,
        "activity_id": record.activity_id,
        "participant_id": record.participant_id,
        "destinations": [
            {
                "destination": d.token if reveal else mask(d.token),
                "active": d.active,
                "deactivated_at": None if d.deactivated_at is None else iso_utc(d.deactivated_at),
                "deactivated_reason": d.deactivated_reason,
            }
            for d in record.destinations
        ],
        "title": record.title,
        "message": record.message,
        "timezone": record.timezone,
        "start": iso_local(record.start_at, tz),
        "end": None if record.end_at is None else iso_local(record.end_at, tz),
        "cron": record.cron,
        "repeat": record.repeat,
        "times": record.times.split(",") if record.times else [],
        "state": record.state,
        "next_fire_times": [iso_local(t, tz) for t in nxt],
        "created_at": iso_utc(record.created_at),
    }


def occurrence_view(occ: OccurrenceRecord, tz_name: str) -> dict[str, Any]:
    """History entry: times and results only (never title, message or tokens)."""
    tz = load_timezone(tz_name)
    return {
        "scheduled_at": iso_local(occ.scheduled_at, tz),
        "fired_at": None if occ.fired_at is None else iso_utc(occ.fired_at),
        "completed_at": None if occ.completed_at is None else iso_utc(occ.completed_at),
        "status": occ.status,
        "detail": occ.detail,
        "results": [
            {"destination": d.position, "status": d.status, "reason": d.reason}
            for d in occ.deliveries
        ],
    }


def upcoming_local(rule: Rule, after: float, count: int, tz_name: str) -> Sequence[str]:
    tz = load_timezone(tz_name)
    return [iso_local(t, tz) for t in rule.upcoming(after, count)]
