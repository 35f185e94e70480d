"""The days, instants and ids the web's lists and filters accept (the JSON API's bounds).

Query strings are pasted, edited and guessed, so anything may come in. A day such as 9999-12-31
parses, yet a page that adds a day to it overflows, and an id above the bigint range parses, yet
Postgres refuses it: both would be a 500. These readers raise ValueError for them instead, as
for text that names no day or number, so each page treats them as it treats any bad value.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

# Days and instants outside these bounds are refused (by the JSON API's fields too).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)
FIRST_MOMENT = datetime(2000, 1, 1, tzinfo=UTC)
LAST_MOMENT = datetime(2999, 12, 31, tzinfo=UTC)
MAX_ID = 2**63 - 1  # bigint
DAY_RANGE = f"from {FIRST_DAY} to {LAST_DAY}"


def parse_day(raw: str) -> date:
    """Return the day `raw` names (YYYY-MM-DD); raise ValueError unless FIRST_DAY..LAST_DAY."""
    day = date.fromisoformat(raw)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{day} is not {DAY_RANGE}")
    return day


def parse_moment(raw: str, zone: tzinfo = UTC) -> datetime:
    """Return the instant `raw` names (ISO 8601; `zone` when it has no offset); raise
    ValueError unless FIRST_MOMENT..LAST_MOMENT."""
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        in_range = FIRST_MOMENT <= moment <= LAST_MOMENT
    except OverflowError as exc:  # an offset that takes it past year 1 or 9999
        raise ValueError(f"{raw} is not {DAY_RANGE}") from exc
    if not in_range:
        raise ValueError(f"{raw} is not {DAY_RANGE}")
    return moment


def parse_id(raw: str) -> int:
    """Return the row id `raw` names; raise ValueError unless a number in 1..MAX_ID."""
    # isascii: "²".isdigit() is true, yet int("²") raises.
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID):
        raise ValueError(f"{raw[:40]} is not an id")
    return int(raw)
