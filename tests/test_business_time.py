"""Business-time arithmetic against a minute-by-minute reference, across DST and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cass.business_time import (
    TWENTY_FOUR_SEVEN,
    Calendar,
    format_hours,
    parse_hours,
)

MINUTE = timedelta(minutes=1)
# Zones with DST both ways, a 30-minute DST (Lord Howe), a half-hour offset and none at all.
ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
]
# Around the 2026 DST changes of those zones, so every example is near one.
AROUND = [
    datetime(2026, 3, 29, tzinfo=UTC),  # Europe springs forward
    datetime(2026, 10, 25, tzinfo=UTC),  # Europe falls back
    datetime(2026, 3, 8, tzinfo=UTC),  # US springs forward
    datetime(2026, 11, 1, tzinfo=UTC),  # US falls back
    datetime(2026, 4, 5, tzinfo=UTC),  # Australia falls back
    datetime(2026, 10, 4, tzinfo=UTC),  # Australia springs forward
]


def reference_between(calendar: Calendar, start: datetime, end: datetime) -> timedelta:
    """Count the open minutes from `start` to `end`, one by one (both minute-aligned)."""
    open_minutes = 0
    moment = start
    while moment < end:
        open_minutes += calendar.is_open(moment)
        moment += MINUTE
    return open_minutes * MINUTE


def reference_add(calendar: Calendar, start: datetime, minutes: int) -> datetime:
    """Walk minute by minute until `minutes` open minutes have passed."""
    moment, counted = start, 0
    while counted < minutes:
        counted += calendar.is_open(moment)
        moment += MINUTE
    # The target is the end of the last open minute, not the closed minutes after it.
    return moment


@st.composite
def weekly_hours(draw: st.DrawFn) -> tuple[tuple[tuple[int, int], ...], ...]:
    days = []
    for _ in range(7):
        # Up to three ranges per day, on quarter hours, including ones over DST hours (01:00-03:00).
        cuts = sorted(set(draw(st.lists(st.integers(0, 96).map(lambda q: q * 15), max_size=6))))
        ranges = tuple((lo, hi) for lo, hi in zip(cuts[::2], cuts[1::2], strict=False) if lo < hi)
        days.append(ranges)
    return tuple(days)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    hours = draw(weekly_hours())
    if not any(hours):
        hours = (((8 * 60, 17 * 60),),) * 5 + ((), ())
    base = draw(st.sampled_from(AROUND)).date()
    holidays = frozenset(
        base + timedelta(days=d) for d in draw(st.lists(st.integers(-3, 10), max_size=3))
    )
    return Calendar(timezone=draw(st.sampled_from(ZONES)), hours=hours, holidays=holidays)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    base = draw(st.sampled_from(AROUND))
    return base + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))


@settings(max_examples=150, deadline=None)
@given(calendars(), instants(), st.integers(0, 4 * 1440))
def test_between_matches_the_minute_by_minute_count(
    calendar: Calendar, start: datetime, length: int
) -> None:
    end = start + timedelta(minutes=length)
    assert calendar.between(start, end) == reference_between(calendar, start, end)
    assert calendar.between(end, start) == -calendar.between(start, end)


@settings(max_examples=150, deadline=None)
@given(calendars(), instants(), st.integers(0, 3 * 600))
def test_add_matches_the_minute_by_minute_walk(
    calendar: Calendar, start: datetime, minutes: int
) -> None:
    due = calendar.add_minutes(start, minutes)
    assert due == reference_add(calendar, start, minutes)
    # And the two operations agree with each other.
    assert calendar.minutes_between(start, due) == minutes


@settings(max_examples=100, deadline=None)
@given(calendars(), instants(), st.integers(1, 2000), st.integers(1, 2000))
def test_adding_in_two_steps_equals_adding_once(
    calendar: Calendar, start: datetime, first: int, second: int
) -> None:
    assert calendar.add_minutes(calendar.add_minutes(start, first), second) == (
        calendar.add_minutes(start, first + second)
    )


BERLIN_OFFICE = Calendar(
    timezone="Europe/Berlin",
    hours=parse_hours("mon-fri 08:00-12:00 13:00-17:00"),
    holidays=frozenset({date(2026, 12, 25), date(2026, 12, 26)}),
)


def berlin(*args: int) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"))


def test_split_shift_skips_lunch_and_the_night() -> None:
    # Friday 11:00 + 3 h: one hour before lunch, two after it.
    assert BERLIN_OFFICE.add(berlin(2026, 11, 27, 11, 0), timedelta(hours=3)) == berlin(
        2026, 11, 27, 15, 0
    )
    # Friday 16:00 + 2 h: one hour on Friday, one on Monday morning.
    assert BERLIN_OFFICE.add(berlin(2026, 11, 27, 16, 0), timedelta(hours=2)) == berlin(
        2026, 11, 30, 9, 0
    )


def test_a_target_ending_at_closing_time_is_due_at_closing_time() -> None:
    assert BERLIN_OFFICE.add(berlin(2026, 11, 27, 13, 0), timedelta(hours=4)) == berlin(
        2026, 11, 27, 17, 0
    )


def test_holidays_are_closed_all_day() -> None:
    # Thursday 24 Dec 16:30 + 1 h: Christmas and Boxing Day closed, then the weekend.
    assert BERLIN_OFFICE.add(berlin(2026, 12, 24, 16, 30), timedelta(hours=1)) == berlin(
        2026, 12, 28, 8, 30
    )


def test_working_hours_keep_their_wall_clock_over_dst() -> None:
    # Friday before the October change + 8 business hours: Monday after it, 8:00 local at +01:00.
    due = BERLIN_OFFICE.add(berlin(2026, 10, 23, 17, 0), timedelta(hours=8))
    assert due == berlin(2026, 10, 26, 17, 0)
    assert due.astimezone(UTC).hour == 16


def test_twenty_four_seven_is_plain_time_even_over_dst() -> None:
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert TWENTY_FOUR_SEVEN.add(start, timedelta(hours=5)) == start + timedelta(hours=5)
    night = Calendar(timezone="Europe/Berlin", always_open=True)
    # The spring-forward local day is 23 hours long.
    assert night.between(berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0)) == timedelta(
        hours=23
    )


def test_a_calendar_without_open_hours_refuses_to_add() -> None:
    with pytest.raises(ValueError, match="no open hours"):
        Calendar().add(datetime(2026, 1, 1, tzinfo=UTC), MINUTE)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mon-fri", "needs days"),
        ("funday 08:00-17:00", "not a day"),
        ("fri-mon 08:00-17:00", "backwards"),
        ("mon 17:00-08:00", "ends before"),
        ("mon 08:00-25:00", "not a time of day"),
        ("mon 08:00-12:00 11:00-13:00", "overlap"),
        ("mon 8am-5pm", "not a time"),
    ],
)
def test_bad_hours_are_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_hours(text)


def test_hours_round_trip_through_their_text_form() -> None:
    text = "mon-fri 08:00-12:00 13:00-17:00; sat 09:00-13:00"
    assert format_hours(parse_hours(text)) == text
    assert parse_hours("daily 00:00-24:00")[6] == ((0, 1440),)


def test_adding_a_week_of_business_time_is_fast() -> None:
    import time

    fresh = Calendar(timezone="America/New_York", hours=parse_hours("mon-fri 09:00-17:00"))
    started = time.perf_counter()
    for hour in range(100):
        fresh.add(datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hour), timedelta(hours=40))
    # 2 ms per ticket is the budget for all its clocks; one add is far below it.
    assert (time.perf_counter() - started) / 100 < 0.002


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        BERLIN_OFFICE.add(datetime(2026, 1, 5, 9, 0), MINUTE)


def test_next_open_is_now_when_open_else_the_next_opening() -> None:
    assert BERLIN_OFFICE.next_open(berlin(2026, 11, 27, 10, 0)) == berlin(2026, 11, 27, 10, 0)
    assert BERLIN_OFFICE.next_open(berlin(2026, 11, 27, 12, 30)) == berlin(2026, 11, 27, 13, 0)
    assert BERLIN_OFFICE.next_open(berlin(2026, 11, 27, 17, 0)) == berlin(2026, 11, 30, 8, 0)
    assert BERLIN_OFFICE.next_open(berlin(2026, 12, 24, 18, 0)) == berlin(2026, 12, 28, 8, 0)
