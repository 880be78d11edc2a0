"""Business hours: the `BFF_BUSINESS_HOURS` format, and whether the contact center is open.

Owns parsing and checking the schedule, and two pure functions of a schedule and an instant:
`is_open` and `next_open`. Local times are read in the schedule's IANA zone (stdlib
`zoneinfo`), so opening at 09:00 stays 09:00 across daylight-saving changes. It must not read
the clock or the environment: callers pass the instant.

Format: clauses separated by `;`. The first is the time zone; then any number of weekly
ranges, `<days> <HH:MM>-<HH:MM>[,<HH:MM>-<HH:MM>...]`, with days `Mon`..`Sun`, a range
`Mon-Fri` or a list `Sat,Sun`; then optionally `closed <date>[,<date>...]` with ISO dates or
date ranges `2026-12-24..2026-12-26`:

    Europe/Berlin; Mon-Fri 09:00-12:30,13:30-18:00; Sat 10:00-14:00; closed 2026-12-24..2026-12-26

A range ends after it starts, or at `24:00`; one that ends at or before its start runs past
midnight into the next day (`Fri 22:00-02:00`). A holiday closes its whole local day, and
cancels the ranges that start on it. A local time skipped by a daylight-saving change
(02:30 on the spring-forward night) counts as the same wall time before the change, that
is one hour later after it; a repeated one (fall back) means its first occurrence.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far ahead `next_open` looks: a year of holidays must not hide the next opening.
HORIZON_DAYS = 400
MAX_HOLIDAYS = 1000
_TIME = re.compile(r"^(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Span:
    """One opening on a weekday: from `start` for `minutes` minutes (may pass midnight)."""

    start: time
    minutes: int


@dataclass(frozen=True, slots=True)
class BusinessHours:
    zone: ZoneInfo
    weekly: tuple[tuple[Span, ...], ...]  # index 0 = Monday
    holidays: frozenset[date]

    @property
    def always_closed(self) -> bool:
        return not any(self.weekly)


def parse(text: str) -> BusinessHours:
    """The schedule `text` describes; ValueError naming what is wrong."""
    clauses = [c.strip() for c in text.split(";")]
    if not clauses or not clauses[0]:
        raise ValueError("business hours start with an IANA time zone, e.g. Europe/Berlin")
    zone = _zone(clauses[0])
    weekly: list[list[Span]] = [[] for _ in DAYS]
    holidays: set[date] = set()
    for clause in clauses[1:]:
        if not clause:
            continue
        head, _, rest = clause.partition(" ")
        rest = rest.strip()
        if head.lower() == "closed":
            holidays |= _dates(rest)
            if len(holidays) > MAX_HOLIDAYS:
                raise ValueError(f"at most {MAX_HOLIDAYS} holidays")
            continue
        if not rest:
            raise ValueError(f"{clause!r}: expected '<days> <HH:MM>-<HH:MM>'")
        spans = [_span(part.strip()) for part in rest.split(",")]
        for day in _days(head):
            weekly[day] += spans
    for day, spans in enumerate(weekly):
        spans.sort(key=lambda s: s.start)
        for before, after in itertools.pairwise(spans):
            end = _minutes(before.start) + before.minutes
            if end > _minutes(after.start):
                raise ValueError(f"{DAYS[day].title()}: ranges overlap")
    return BusinessHours(zone, tuple(tuple(s) for s in weekly), frozenset(holidays))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None


def _days(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().lower().partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(f"{part.strip()!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
        start = DAYS.index(first)
        stop = DAYS.index(last) if dash else start
        if stop < start:
            raise ValueError(f"{part.strip()!r}: a day range runs forward (Mon-Fri)")
        out += range(start, stop + 1)
    return out


def _clock(text: str, *, end: bool) -> int:
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"{text!r}: times are HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    if (hours, minutes) == (24, 0) and end:
        return 24 * 60
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text!r}: not a time of day")
    return hours * 60 + minutes


def _span(text: str) -> Span:
    start_text, dash, end_text = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r}: a range is HH:MM-HH:MM")
    start = _clock(start_text.strip(), end=False)
    end = _clock(end_text.strip(), end=True)
    minutes = end - start if end > start else end + 24 * 60 - start
    return Span(time(start // 60, start % 60), minutes)


def _dates(text: str) -> set[date]:
    out: set[date] = set()
    for part in text.split(","):
        first, dots, last = part.strip().partition("..")
        try:
            start = date.fromisoformat(first.strip())
            stop = date.fromisoformat(last.strip()) if dots else start
        except ValueError:
            raise ValueError(f"{part.strip()!r}: holidays are YYYY-MM-DD or a..b") from None
        if stop < start:
            raise ValueError(f"{part.strip()!r}: not a forward date range")
        if (stop - start).days >= MAX_HOLIDAYS:
            raise ValueError(f"at most {MAX_HOLIDAYS} holidays")
        out |= {start + timedelta(days=n) for n in range((stop - start).days + 1)}
    return out


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _openings(hours: BusinessHours, day: date) -> list[tuple[datetime, datetime]]:
    """The opening intervals that start on local `day`, as aware datetimes."""
    if day in hours.holidays:
        return []
    out = []
    for span in hours.weekly[day.weekday()]:
        start = datetime.combine(day, span.start, tzinfo=hours.zone)
        # Wall-clock arithmetic: the end is so many minutes of the local day later, whatever
        # a daylight-saving change in between does to the elapsed time.
        end_day = day + timedelta(days=(_minutes(span.start) + span.minutes) // (24 * 60))
        end_min = (_minutes(span.start) + span.minutes) % (24 * 60)
        end = datetime.combine(end_day, time(end_min // 60, end_min % 60), tzinfo=hours.zone)
        out.append((_settle(start), _settle(end)))
    return out


def _settle(local: datetime) -> datetime:
    """A local wall time as the instant it names: UTC round trip resolves skipped times."""
    return local.astimezone(ZoneInfo("UTC"))


def is_open(hours: BusinessHours, instant: datetime) -> bool:
    """Whether `instant` (timezone-aware) falls in an opening."""
    local = instant.astimezone(hours.zone)
    today = local.date()
    if today in hours.holidays:
        return False
    for day in (today - timedelta(days=1), today):
        for start, end in _openings(hours, day):
            if start <= instant < end:
                return True
    return False


def next_open(hours: BusinessHours, instant: datetime) -> datetime | None:
    """When the next opening after `instant` starts, in the schedule's zone; None when open
    now or when nothing opens within `HORIZON_DAYS`."""
    if is_open(hours, instant):
        return None
    today = instant.astimezone(hours.zone).date()
    for offset in range(HORIZON_DAYS + 1):
        for start, _ in _openings(hours, today + timedelta(days=offset)):
            if start > instant:
                return start.astimezone(hours.zone)
    return None
