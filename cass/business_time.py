"""Business-time arithmetic: open hours in a timezone, split shifts, holidays, DST-correct.

A calendar is open at an instant when, on the instant's local (wall-clock) date, that date is not a
holiday and the local time of day falls in one of the weekday's open ranges. That definition is
checked minute by minute by the property tests; the functions here get the same answers by
working with whole open spans, so adding a week of business time costs a few dozen steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 1440
# UTC offsets stay within ±14 h (+ a margin), so the instants of one local date lie in this window.
_REACH = timedelta(hours=15)
_PROBE = timedelta(hours=3)  # DST changes are at least this far apart in every zone
MAX_SEARCH_DAYS = 3 * 366  # a target that cannot be met within this is an error, not a loop
_ONE_DAY = timedelta(days=1)

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Calendar:
    """Weekly open hours (minutes of the local day, per weekday Monday..Sunday) and holidays."""

    timezone: str = "UTC"
    # hours[weekday] = ((start_minute, end_minute), ...), sorted, not overlapping, end <= 1440.
    hours: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7
    holidays: frozenset[date] = frozenset()
    always_open: bool = False
    _spans: dict[date, tuple[Span, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise ValueError("hours needs one entry per weekday, Monday first")
        for ranges in self.hours:
            previous_end = -1
            for start, end in ranges:
                if not 0 <= start < end <= MINUTES_PER_DAY or start < previous_end:
                    raise ValueError(f"bad open range {start}-{end}")
                previous_end = end
        ZoneInfo(self.timezone)  # raises for an unknown zone

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def has_open_hours(self) -> bool:
        return self.always_open or any(self.hours)

    def is_open(self, moment: datetime) -> bool:
        """Say whether the calendar is open at an instant (the definition, instant by instant)."""
        if self.always_open:
            return True
        local = moment.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.hours[local.weekday()])

    def open_spans(self, day: date) -> tuple[Span, ...]:
        """Return the UTC spans in which the calendar is open on a local date."""
        cached = self._spans.get(day)
        if cached is None:
            cached = self._spans[day] = tuple(self._compute_spans(day))
        return cached

    def _compute_spans(self, day: date) -> list[Span]:
        if self.always_open:
            ranges: tuple[tuple[int, int], ...] = ((0, MINUTES_PER_DAY),)
        elif day in self.holidays:
            return []
        else:
            ranges = self.hours[day.weekday()]
        if not ranges:
            return []
        midnight = datetime.combine(day, time(), tzinfo=UTC)  # the wall clock read as if UTC
        pieces = list(_offset_pieces(self.zone, midnight - _REACH, midnight + _ONE_DAY + _REACH))
        spans: list[Span] = []
        for start, end in ranges:
            wall_start = midnight + timedelta(minutes=start)
            wall_end = midnight + timedelta(minutes=end)
            for piece_start, piece_end, offset in pieces:
                # With the offset fixed, wall time = instant + offset: the range is one interval.
                lo = max(piece_start, wall_start - offset)
                hi = min(piece_end, wall_end - offset)
                if lo < hi:
                    spans.append((lo, hi))
        return list(_merge(spans))

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """Return the instant `amount` of business time after `start`."""
        if amount < timedelta(0):
            raise ValueError("amount must not be negative")
        start = _utc(start)
        if self.always_open or not amount:
            return start + amount
        if not self.has_open_hours:
            raise ValueError("the calendar has no open hours")
        remaining = amount
        for span_start, span_end in self._spans_from(start):
            if span_end <= start:
                continue
            begin = max(span_start, start)
            available = span_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise ValueError(f"no {amount} of open time within {MAX_SEARCH_DAYS} days")

    def next_open(self, moment: datetime) -> datetime:
        """Return `moment` if the calendar is open then, else when it next opens."""
        moment = _utc(moment)
        if self.always_open:
            return moment
        if not self.has_open_hours:
            raise ValueError("the calendar has no open hours")
        for span_start, span_end in self._spans_from(moment):
            if span_end > moment:
                return max(span_start, moment)
        raise ValueError(f"not open within {MAX_SEARCH_DAYS} days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Return the business time from `start` to `end` (negative when `end` is earlier)."""
        # In UTC: Python subtracts two times of one zone by their wall clocks, ignoring DST.
        start, end = _utc(start), _utc(end)
        if end < start:
            return -self.between(end, start)
        if self.always_open:
            return end - start
        total = timedelta(0)
        for span_start, span_end in self._spans_from(start):
            if span_start >= end:
                break
            lo, hi = max(span_start, start), min(span_end, end)
            if lo < hi:
                total += hi - lo
        return total

    def add_minutes(self, start: datetime, minutes: float) -> datetime:
        """Return the instant `minutes` business minutes after `start`."""
        return self.add(start, timedelta(minutes=minutes))

    def minutes_between(self, start: datetime, end: datetime) -> float:
        """Return the business minutes from `start` to `end`."""
        return self.between(start, end) / timedelta(minutes=1)

    def _spans_from(self, start: datetime) -> Iterator[Span]:
        day = start.astimezone(self.zone).date()
        for _ in range(MAX_SEARCH_DAYS):
            yield from self.open_spans(day)
            day += _ONE_DAY


TWENTY_FOUR_SEVEN = Calendar(always_open=True)


def _offset_pieces(
    zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """Split [start, end) into pieces of constant UTC offset, finding each change by bisection."""
    piece_start = start
    offset = _offset(zone, start)
    probe = start
    while probe < end:
        following = min(probe + _PROBE, end)
        later = _offset(zone, following)
        if later != offset:
            lo, hi = probe, following  # the change is in (lo, hi]
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    break
                if _offset(zone, mid) == offset:
                    lo = mid
                else:
                    hi = mid
            yield piece_start, hi, offset
            piece_start, offset = hi, later
        probe = following
    yield piece_start, end, offset


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business time needs timezone-aware datetimes")
    return moment.astimezone(UTC)


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _merge(spans: Iterable[Span]) -> Iterator[Span]:
    current: Span | None = None
    for lo, hi in sorted(spans):
        if current and lo <= current[1]:
            current = (current[0], max(current[1], hi))
            continue
        if current:
            yield current
        current = (lo, hi)
    if current:
        yield current


def parse_hours(text: str) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Parse weekly hours such as "mon-fri 08:00-12:00 13:00-17:00; sat 09:00-13:00"."""
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for clause in filter(None, (part.strip() for part in text.replace("\n", ";").split(";"))):
        words = clause.split()
        if len(words) < 2:
            raise ValueError(f"'{clause}' needs days and at least one time range")
        for weekday in _weekdays(words[0]):
            days[weekday].extend(_time_range(word) for word in words[1:])
    result = []
    for ranges in days:
        ranges.sort()
        for (_, end), (start, _) in pairwise(ranges):
            if start < end:
                raise ValueError("open ranges of one day overlap")
        result.append(tuple(ranges))
    return tuple(result)


def format_hours(hours: tuple[tuple[tuple[int, int], ...], ...]) -> str:
    """Write weekly hours in the form parse_hours() reads, grouping days with the same ranges."""
    clauses: list[str] = []
    weekday = 0
    while weekday < 7:
        ranges = hours[weekday]
        last = weekday
        while last + 1 < 7 and hours[last + 1] == ranges:
            last += 1
        if ranges:
            days = WEEKDAYS[weekday] if last == weekday else f"{WEEKDAYS[weekday]}-{WEEKDAYS[last]}"
            clauses.append(" ".join([days, *(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in ranges)]))
        weekday = last + 1
    return "; ".join(clauses)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays(word: str) -> list[int]:
    word = word.lower()
    if word in ("daily", "all", "mon-sun"):
        return list(range(7))
    first, _, last = word.partition("-")
    try:
        lo = WEEKDAYS.index(first[:3])
        hi = WEEKDAYS.index(last[:3]) if last else lo
    except ValueError:
        raise ValueError(f"'{word}' is not a day or range of days (mon-fri)") from None
    if hi < lo:
        raise ValueError(f"'{word}' runs backwards")
    return list(range(lo, hi + 1))


def _time_range(word: str) -> tuple[int, int]:
    first, sep, last = word.partition("-")
    if not sep:
        raise ValueError(f"'{word}' is not a time range (08:00-17:00)")
    start, end = _minute(first), _minute(last)
    if end <= start:
        raise ValueError(f"'{word}' ends before it starts")
    return start, end


def _minute(word: str) -> int:
    hour, sep, minute = word.partition(":")
    try:
        value = int(hour) * 60 + (int(minute) if sep else 0)
    except ValueError:
        raise ValueError(f"'{word}' is not a time (HH:MM)") from None
    if not 0 <= value <= MINUTES_PER_DAY or (sep and not 0 <= int(minute) < 60):
        raise ValueError(f"'{word}' is not a time of day")
    return value


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
