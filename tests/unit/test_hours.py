"""Business hours as pure functions: the format, openings across daylight-saving changes,
overnight ranges and holidays, and the next opening. Tables, plus properties under
hypothesis."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.outbox.hours import BusinessHours, is_open, next_open, parse

BERLIN = "Europe/Berlin; Mon-Fri 09:00-17:00; Sat 10:00-14:00; closed 2026-12-24..2026-12-26"
NEW_YORK = "America/New_York; Mon-Sun 01:30-03:30"
NIGHT = "Europe/Berlin; Fri 22:00-02:00; closed 2026-07-04"
SAT_NIGHT = "Europe/Berlin; Sat 22:00-04:00"
SPLIT = "Asia/Tokyo; Mon,Wed 09:00-12:00,13:00-18:00; Sun 00:00-24:00"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# (schedule, instant with its UTC offset, open?)
OPEN_TABLE = [
    # A plain week in winter (UTC+1) and summer (UTC+2): 09:00 local either way.
    (BERLIN, "2026-01-13T08:59:59+01:00", False),
    (BERLIN, "2026-01-13T09:00:00+01:00", True),
    (BERLIN, "2026-01-13T16:59:59+01:00", True),
    (BERLIN, "2026-01-13T17:00:00+01:00", False),
    (BERLIN, "2026-07-14T09:00:00+02:00", True),
    (BERLIN, "2026-07-14T07:30:00+00:00", True),  # 09:30 local in summer
    (BERLIN, "2026-01-13T07:30:00+00:00", False),  # 08:30 local in winter
    (BERLIN, "2026-01-18T12:00:00+01:00", False),  # Sunday
    (BERLIN, "2026-01-17T13:59:00+01:00", True),  # Saturday
    # Spring forward, Monday 2026-03-30 is the first day on UTC+2; Friday before on UTC+1.
    (BERLIN, "2026-03-27T08:30:00+00:00", True),  # 09:30 CET
    (BERLIN, "2026-03-30T07:00:00+00:00", True),  # 09:00 CEST
    (BERLIN, "2026-03-30T07:59:59+00:00", True),
    (BERLIN, "2026-03-30T06:59:59+00:00", False),
    # Fall back on Sunday 2026-10-25: Monday 09:00 is 08:00 UTC again.
    (BERLIN, "2026-10-26T07:59:59+00:00", False),
    (BERLIN, "2026-10-26T08:00:00+00:00", True),
    (BERLIN, "2026-10-23T07:00:00+00:00", True),  # Friday before: 09:00 CEST
    # Holidays close whole days.
    (BERLIN, "2026-12-24T10:00:00+01:00", False),
    (BERLIN, "2026-12-26T12:00:00+01:00", False),  # a Saturday, also a holiday
    (BERLIN, "2026-12-28T10:00:00+01:00", True),
    # New York, a range around the 02:00 changes. Spring forward 2026-03-08: 02:00-03:00
    # does not exist, so 01:30-03:30 lasts one hour of real time.
    (NEW_YORK, "2026-03-08T01:29:00-05:00", False),
    (NEW_YORK, "2026-03-08T01:30:00-05:00", True),
    (NEW_YORK, "2026-03-08T03:29:00-04:00", True),
    (NEW_YORK, "2026-03-08T03:30:00-04:00", False),
    # Fall back 2026-11-01: 01:30 happens twice; the range starts at the first and ends at
    # 03:30 EST, three real hours later.
    (NEW_YORK, "2026-11-01T01:30:00-04:00", True),
    (NEW_YORK, "2026-11-01T01:45:00-05:00", True),
    (NEW_YORK, "2026-11-01T03:29:00-05:00", True),
    (NEW_YORK, "2026-11-01T03:30:00-05:00", False),
    (NEW_YORK, "2026-11-01T01:29:00-04:00", False),
    # Overnight: Friday 22:00 to Saturday 02:00; a holiday Saturday cuts the spill.
    (NIGHT, "2026-06-26T21:59:00+02:00", False),
    (NIGHT, "2026-06-26T22:00:00+02:00", True),
    (NIGHT, "2026-06-27T01:59:00+02:00", True),
    (NIGHT, "2026-06-27T02:00:00+02:00", False),
    (NIGHT, "2026-07-03T23:00:00+02:00", True),
    (NIGHT, "2026-07-04T00:30:00+02:00", False),
    # Overnight across spring forward: Sat 2026-03-28 22:00 CET to Sun 04:00 CEST, five
    # real hours (21:00 to 02:00 UTC).
    (SAT_NIGHT, "2026-03-28T20:59:00+00:00", False),
    (SAT_NIGHT, "2026-03-28T21:00:00+00:00", True),
    (SAT_NIGHT, "2026-03-29T01:59:00+00:00", True),
    (SAT_NIGHT, "2026-03-29T02:00:00+00:00", False),
    # Split days and a whole day ending at 24:00.
    (SPLIT, "2026-01-12T12:30:00+09:00", False),  # Monday lunch
    (SPLIT, "2026-01-12T13:00:00+09:00", True),
    (SPLIT, "2026-01-13T10:00:00+09:00", False),  # Tuesday
    (SPLIT, "2026-01-18T23:59:59+09:00", True),  # Sunday, to midnight
    (SPLIT, "2026-01-19T00:00:00+09:00", False),
]


@pytest.mark.parametrize(("schedule", "instant", "expected"), OPEN_TABLE)
def test_is_open(schedule: str, instant: str, expected: bool) -> None:
    assert is_open(parse(schedule), utc(instant)) is expected


# (schedule, instant, next opening or None)
NEXT_TABLE = [
    (BERLIN, "2026-01-13T10:00:00+01:00", None),  # open now
    (BERLIN, "2026-01-13T18:00:00+01:00", "2026-01-14T09:00:00+01:00"),
    (BERLIN, "2026-01-16T18:00:00+01:00", "2026-01-17T10:00:00+01:00"),  # Fri -> Sat
    (BERLIN, "2026-01-17T15:00:00+01:00", "2026-01-19T09:00:00+01:00"),  # Sat -> Mon
    (BERLIN, "2026-03-27T18:00:00+01:00", "2026-03-28T10:00:00+01:00"),
    (BERLIN, "2026-03-28T15:00:00+01:00", "2026-03-30T09:00:00+02:00"),  # over the change
    (BERLIN, "2026-10-24T15:00:00+02:00", "2026-10-26T09:00:00+01:00"),
    (BERLIN, "2026-12-23T18:00:00+01:00", "2026-12-28T09:00:00+01:00"),  # holidays skipped
    (NIGHT, "2026-07-03T12:00:00+02:00", "2026-07-03T22:00:00+02:00"),
    (NIGHT, "2026-07-04T00:30:00+02:00", "2026-07-10T22:00:00+02:00"),
    (NEW_YORK, "2026-03-07T04:00:00-05:00", "2026-03-08T01:30:00-05:00"),
    (NEW_YORK, "2026-03-08T04:00:00-04:00", "2026-03-09T01:30:00-04:00"),
    ("UTC; closed 2026-01-01", "2026-01-01T10:00:00+00:00", None),  # never opens
    (
        "UTC; Mon 09:00-10:00; closed 2026-01-01..2026-12-31",
        "2026-01-01T00:00:00+00:00",
        "2027-01-04T09:00:00+00:00",
    ),
]


@pytest.mark.parametrize(("schedule", "instant", "expected"), NEXT_TABLE)
def test_next_open(schedule: str, instant: str, expected: str | None) -> None:
    hours = parse(schedule)
    found = next_open(hours, utc(instant))
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert found == datetime.fromisoformat(expected)
    assert found.isoformat() == expected  # shown in the schedule's own offset
    assert is_open(hours, found)
    assert not is_open(hours, found - timedelta(seconds=1))


def test_a_skipped_start_time_opens_at_the_same_wall_time_after_the_change() -> None:
    hours = parse("Europe/Berlin; Sun 02:30-05:00")
    # 2026-03-29 02:30 does not exist in Berlin: opening at 03:30 CEST (01:30 UTC).
    assert not is_open(hours, utc("2026-03-29T01:29:00+00:00"))
    assert is_open(hours, utc("2026-03-29T01:30:00+00:00"))
    assert next_open(hours, utc("2026-03-28T12:00:00+00:00")) == utc("2026-03-29T01:30:00+00:00")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "time zone"),
        ("Mars/Olympus; Mon 09:00-10:00", "unknown time zone"),
        ("UTC; Funday 09:00-10:00", "days are"),
        ("UTC; Fri-Mon 09:00-10:00", "runs forward"),
        ("UTC; Mon", "expected"),
        ("UTC; Mon 9-10", "HH:MM"),
        ("UTC; Mon 09:00", "HH:MM-HH:MM"),
        ("UTC; Mon 25:00-26:00", "not a time of day"),
        ("UTC; Mon 24:00-10:00", "not a time of day"),
        ("UTC; Mon 09:60-10:00", "not a time of day"),
        ("UTC; Mon 09:00-12:00,11:00-13:00", "overlap"),
        ("UTC; Mon 09:00-12:00; Mon 11:00-13:00", "overlap"),
        ("UTC; closed 2026-02-30", "YYYY-MM-DD"),
        ("UTC; closed 2026-12-26..2026-12-24", "forward"),
        ("UTC; closed 2026-01-01..2030-01-01", "at most"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse(text)


def test_parse_reads_every_part() -> None:
    hours = parse(
        " Europe/Berlin ;mon-fri 09:00-17:00 ; SAT 10:00-14:00;"
        "closed 2026-12-24..2026-12-26, 2026-12-31;"
    )
    assert hours.zone == ZoneInfo("Europe/Berlin")
    assert [len(day) for day in hours.weekly] == [1, 1, 1, 1, 1, 1, 0]
    assert hours.holidays == {date(2026, 12, d) for d in (24, 25, 26, 31)}
    assert not parse("UTC").weekly[0] and parse("UTC").always_closed


# -- properties ------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
clock = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def schedules(draw: st.DrawFn) -> BusinessHours:
    clauses = [draw(st.sampled_from(ZONES))]
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
        if draw(st.booleans()):
            start, end = draw(clock), draw(clock)
            if start != end:
                clauses.append(f"{day} {start[0]:02d}:{start[1]:02d}-{end[0]:02d}:{end[1]:02d}")
    holidays = draw(st.lists(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=5))
    if holidays:
        clauses.append("closed " + ",".join(d.isoformat() for d in holidays))
    return parse("; ".join(clauses))


instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(hours=schedules(), instant=instants)
def test_next_open_is_the_first_open_instant(hours: BusinessHours, instant: datetime) -> None:
    found = next_open(hours, instant)
    if is_open(hours, instant):
        assert found is None
        return
    if found is None:
        return
    assert found > instant
    assert is_open(hours, found)
    # Closed all the way there, checked every 15 minutes of real time.
    probe = instant
    while probe < found - timedelta(minutes=15):
        probe += timedelta(minutes=15)
        if probe < found:
            assert not is_open(hours, probe), (probe, found)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_refuses_garbage_with_value_error_only(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse(text)
