"""Input fields the chargers, sessions, visits and reports endpoints share: bounded text without
NUL characters, and days and instants within a range every service can compute with."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from cass.bounds import FIRST_DAY, FIRST_MOMENT, LAST_DAY, LAST_MOMENT

# Days and instants outside the bounds the web's filters keep too are refused: a service that
# adds a day to 9999-12-31, or takes 30 days from 0001-01-05, would fail with an overflow (a
# 500) instead of a 422.
DAY_RANGE = validate.Range(
    min=FIRST_DAY, max=LAST_DAY, error=f"Give a day from {FIRST_DAY} to {LAST_DAY}."
)
MOMENT_RANGE = validate.Range(
    min=FIRST_MOMENT,
    max=LAST_MOMENT,
    error=f"Give a time from {FIRST_DAY} to {LAST_DAY}, with its offset.",
)


def no_nul(value: str) -> None:
    """Refuse text holding NUL: PostgreSQL cannot store or compare it."""
    if "\x00" in value:
        raise ValidationError("NUL characters are not allowed.")


def text(maximum: int, minimum: int = 0, **kwargs: Any) -> fields.String:
    """Return a text field of at most `maximum` characters, none of them NUL."""
    return fields.String(
        validate=[validate.Length(min=minimum, max=maximum), no_nul],
        **kwargs,
    )


def day(description: str, **kwargs: Any) -> fields.Date:
    """Return a date field (YYYY-MM-DD) within FIRST_DAY..LAST_DAY."""
    return fields.Date(validate=DAY_RANGE, metadata={"description": description}, **kwargs)


def moment(description: str, **kwargs: Any) -> fields.AwareDateTime:
    """Return an ISO 8601 instant that must carry its offset, within the same bounds."""
    return fields.AwareDateTime(
        validate=MOMENT_RANGE, metadata={"description": description}, **kwargs
    )


def cursor() -> fields.String:
    """Return the `after` of a list: CursorArgs' field, refusing NUL too (a service's cleaning
    would strip it and turn a cursor it never handed out into one it did)."""
    return text(
        500,
        metadata={"description": "The next_after of the previous page; omit for the first."},
    )
