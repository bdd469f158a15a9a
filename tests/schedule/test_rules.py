"""When schedules fire: every repeat interval, cron, and DST gaps and overlaps in four zones."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from lantern.schedule import Rule, ScheduleInvalid
from lantern.schedule.rules import iso_local, load_timezone, resolve_local


def rule(tz: str, start: str, *, end: str | None = None, **kw: object) -> Rule:
    zone = load_timezone(tz)
    times = kw.pop("times", None)
    return Rule.build(
        timezone=tz,
        start_at=resolve_local(datetime.fromisoformat(start), zone),
        end_at=None if end is None else resolve_local(datetime.fromisoformat(end), zone),
        cron=kw.pop("cron", None),  # type: ignore[arg-type]
        repeat=kw.pop("repeat", None),  # type: ignore[arg-type]
        times=None if times is None else [time.fromisoformat(t) for t in times],  # type: ignore[attr-defined]
    )


def fires(r: Rule, count: int) -> list[str]:
    """The first ``count`` occurrences as local ISO strings with offsets."""
    return [iso_local(t, r.timezone) for t in r.upcoming(r.start_at - 1, count)]


def utc(r: Rule, count: int) -> list[str]:
    return [
        datetime.fromtimestamp(t, load_timezone("UTC")).strftime("%m-%dT%H:%MZ")
        for t in r.upcoming(r.start_at - 1, count)
    ]


# -- DST: America/New_York (spring 2025-03-09 02:00->03:00, fall 2025-11-02 02:00->01:00) -------


def test_new_york_gap_fires_at_the_first_valid_instant_after() -> None:
    r = rule("America/New_York", "2025-03-08T00:00", repeat="daily", times=["02:30"])
    assert fires(r, 3) == [
        "2025-03-08T02:30:00-05:00",
        "2025-03-09T03:00:00-04:00",  # 02:30 does not exist that night: fire when clocks jump
        "2025-03-10T02:30:00-04:00",
    ]


def test_new_york_local_time_stays_put_across_both_changes() -> None:
    r = rule("America/New_York", "2025-03-08T00:00", repeat="daily", times=["09:00"])
    assert utc(r, 2) == ["03-08T14:00Z", "03-09T13:00Z"]  # legacy UTC cron would drift an hour
    r = rule("America/New_York", "2025-11-01T00:00", repeat="daily", times=["09:00"])
    assert utc(r, 2) == ["11-01T13:00Z", "11-02T14:00Z"]


def test_new_york_overlap_fires_once_at_the_first_occurrence() -> None:
    r = rule("America/New_York", "2025-11-01T00:00", repeat="daily", times=["01:30"])
    assert fires(r, 3) == [
        "2025-11-01T01:30:00-04:00",
        "2025-11-02T01:30:00-04:00",  # EDT, the first of the two 01:30s; not again at 01:30 EST
        "2025-11-03T01:30:00-05:00",
    ]


def test_new_york_hourly_skips_the_repeated_hour() -> None:
    r = rule("America/New_York", "2025-11-02T00:00", repeat="hourly", times=["00:30"])
    assert utc(r, 4) == ["11-02T04:30Z", "11-02T05:30Z", "11-02T07:30Z", "11-02T08:30Z"]


def test_several_times_inside_one_gap_collapse_into_one_occurrence() -> None:
    r = rule("America/New_York", "2025-03-09T00:00", cron="*/20 2 * * *")
    assert fires(r, 4) == [
        "2025-03-09T03:00:00-04:00",
        "2025-03-10T02:00:00-04:00",
        "2025-03-10T02:20:00-04:00",
        "2025-03-10T02:40:00-04:00",
    ]


# -- Europe/London (spring 2025-03-30 01:00->02:00, fall 2025-10-26 02:00->01:00) ---------------


def test_london_gap_and_overlap() -> None:
    r = rule("Europe/London", "2025-03-29T00:00", repeat="daily", times=["01:30"])
    assert fires(r, 3) == [
        "2025-03-29T01:30:00+00:00",
        "2025-03-30T02:00:00+01:00",
        "2025-03-31T01:30:00+01:00",
    ]
    r = rule("Europe/London", "2025-10-25T00:00", repeat="daily", times=["01:30"])
    assert utc(r, 3) == ["10-25T00:30Z", "10-26T00:30Z", "10-27T01:30Z"]


# -- Australia/Sydney, southern hemisphere (ends 2025-04-06 03:00->02:00, starts 10-05 02->03) ---


def test_sydney_overlap_in_april_and_gap_in_october() -> None:
    r = rule("Australia/Sydney", "2025-04-05T00:00", repeat="daily", times=["02:30"])
    assert fires(r, 3) == [
        "2025-04-05T02:30:00+11:00",
        "2025-04-06T02:30:00+11:00",  # first of the two 02:30s
        "2025-04-07T02:30:00+10:00",
    ]
    r = rule("Australia/Sydney", "2025-10-04T00:00", repeat="daily", times=["02:30"])
    assert fires(r, 3) == [
        "2025-10-04T02:30:00+10:00",
        "2025-10-05T03:00:00+11:00",
        "2025-10-06T02:30:00+11:00",
    ]


def test_kolkata_has_no_dst_and_keeps_its_half_hour_offset() -> None:
    r = rule("Asia/Kolkata", "2025-01-01T00:00", repeat="daily", times=["09:00"])
    instants = r.upcoming(r.start_at - 1, 366)
    assert len(instants) == 366
    assert {
        datetime.fromtimestamp(t, load_timezone("UTC")).strftime("%H:%M") for t in instants
    } == {"03:30"}
    assert all(b - a == 86400 for a, b in itertools.pairwise(instants))


# -- every repeat interval (Kolkata: no DST noise; 2025-01-06 is a Monday) -----------------------

START = "2025-01-06T00:00"
CASES = {
    "hourly": (["08:15"], ["01-06 00:15", "01-06 01:15", "01-06 02:15"]),
    "every3h": (["08:15"], ["01-06 02:15", "01-06 05:15", "01-06 08:15", "01-06 11:15"]),
    "every6h": (["08:15"], ["01-06 02:15", "01-06 08:15", "01-06 14:15", "01-06 20:15"]),
    "every12h": (["08:15"], ["01-06 08:15", "01-06 20:15", "01-07 08:15"]),
    "daily": (["08:15"], ["01-06 08:15", "01-07 08:15", "01-08 08:15"]),
    "weekly": (["08:15"], ["01-06 08:15", "01-13 08:15", "01-20 08:15"]),  # start's weekday
    "biweekly": (["08:15"], ["01-07 08:15", "01-09 08:15", "01-14 08:15"]),  # Tue/Thu
    "triweekly": (["08:15"], ["01-06 08:15", "01-08 08:15", "01-10 08:15", "01-13 08:15"]),
    "fortnightly": (["08:15"], ["01-06 08:15", "01-20 08:15", "02-03 08:15"]),
    "monthly": (["08:15"], ["01-06 08:15", "02-06 08:15", "03-06 08:15"]),
    "bimonthly": (["08:15"], ["01-10 08:15", "01-20 08:15", "02-10 08:15"]),
    "custom": (
        ["20:00", "08:00", "12:30"],
        ["01-06 08:00", "01-06 12:30", "01-06 20:00", "01-07 08:00"],
    ),
}


@pytest.mark.parametrize("repeat", sorted(CASES))
def test_repeat_interval(repeat: str) -> None:
    times, expected = CASES[repeat]
    r = rule("Asia/Kolkata", START, repeat=repeat, times=times)
    got = [datetime.fromisoformat(x).strftime("%m-%d %H:%M") for x in fires(r, len(expected))]
    assert got == expected


def test_none_fires_once_at_start() -> None:
    r = rule("Asia/Kolkata", "2025-01-06T10:05", repeat="none")
    assert fires(r, 3) == ["2025-01-06T10:05:00+05:30"]


def test_monthly_on_the_31st_clamps_to_the_last_day() -> None:
    r = rule("Asia/Kolkata", "2025-01-31T07:00", repeat="monthly")
    assert [x[:10] for x in fires(r, 4)] == ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"]


def test_time_of_day_defaults_to_start_and_end_bounds_the_series() -> None:
    r = rule("Asia/Kolkata", "2025-01-06T07:45", end="2025-01-08T07:45", repeat="daily")
    assert fires(r, 10) == [
        "2025-01-06T07:45:00+05:30",
        "2025-01-07T07:45:00+05:30",
        "2025-01-08T07:45:00+05:30",
    ]


def test_cron_is_evaluated_in_local_time() -> None:
    r = rule("Europe/London", "2025-03-28T00:00", cron="0 9 * * 1-5")
    assert utc(r, 3) == ["03-28T09:00Z", "03-31T08:00Z", "04-01T08:00Z"]


# -- invalid rules name the field ----------------------------------------------------------------

BAD = [
    ({"timezone": "Mars/Olympus_Mons", "repeat": "daily"}, "timezone"),
    ({"timezone": "../../etc/passwd", "repeat": "daily"}, "timezone"),
    ({"cron": "0 0 * * * *"}, "cron"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "every day"}, "cron"),
    ({"cron": "0 9 * * *", "times": ["09:00"]}, "times"),
    ({"repeat": "none", "times": ["09:00"]}, "times"),
    ({"repeat": "daily", "times": ["09:00", "10:00"]}, "times"),
    ({"repeat": "custom"}, "times"),
    ({"repeat": "yearly"}, "repeat"),
    ({"repeat": "daily", "cron": "0 9 * * *"}, "repeat"),
    ({}, "repeat"),
]


@pytest.mark.parametrize(("kw", "field"), BAD)
def test_invalid_rule_names_the_field(kw: dict[str, object], field: str) -> None:
    tz = str(kw.pop("timezone", "UTC"))
    times = kw.pop("times", None)
    with pytest.raises(ScheduleInvalid) as err:
        Rule.build(
            timezone=tz,
            start_at=0,
            end_at=None,
            cron=kw.get("cron"),  # type: ignore[arg-type]
            repeat=kw.get("repeat"),  # type: ignore[arg-type]
            times=None if times is None else [time.fromisoformat(t) for t in times],  # type: ignore[attr-defined]
        )
    assert err.value.field == field


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ScheduleInvalid) as err:
        Rule.build(timezone="UTC", start_at=100, end_at=50, cron=None, repeat="daily", times=None)
    assert err.value.field == "end"


# -- repeat intervals are matched without croniter: same answers as their cron forms -----------

_CRON_FORMS = {
    "hourly": "{m} * * * *",
    "every3h": "{m} {h3} * * *",
    "every6h": "{m} {h6} * * *",
    "every12h": "{m} {h12} * * *",
    "daily": "{m} {h} * * *",
    "weekly": "{m} {h} * * {dow}",
    "biweekly": "{m} {h} * * 2,4",
    "triweekly": "{m} {h} * * 1,3,5",
    "bimonthly": "{m} {h} 10,20 * *",
}


@settings(max_examples=300, deadline=None)
@given(
    repeat=st.sampled_from(sorted(_CRON_FORMS)),
    at_time=st.times().map(lambda t: time(t.hour, t.minute)),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    after=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_repeat_intervals_agree_with_their_cron_form(
    repeat: str, at_time: time, start: datetime, after: datetime
) -> None:
    r = Rule.build(
        timezone="UTC",
        start_at=int(start.replace(tzinfo=UTC).timestamp()),
        end_at=None,
        cron=None,
        repeat=repeat,
        times=[at_time],
    )
    h, m = at_time.hour, at_time.minute
    expr = _CRON_FORMS[repeat].format(
        m=m,
        h=h,
        dow=start.isoweekday() % 7,
        **{f"h{n}": ",".join(str(x) for x in range(h % n, 24, n)) for n in (3, 6, 12)},
    )
    assert r.next_local(after) == croniter(expr, after).get_next(datetime)


@settings(max_examples=100, deadline=None)
@given(
    chosen=st.sets(st.times().map(lambda t: time(t.hour, t.minute)), min_size=1, max_size=5),
    after=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_custom_times_agree_with_their_cron_forms(chosen: set[time], after: datetime) -> None:
    r = Rule.build(
        timezone="UTC", start_at=0, end_at=None, cron=None, repeat="custom", times=sorted(chosen)
    )
    expected = min(croniter(f"{t.minute} {t.hour} * * *", after).get_next(datetime) for t in chosen)
    assert r.next_local(after) == expected
