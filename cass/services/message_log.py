"""The OCPP message log's upkeep: daily partitions made ahead, old ones dropped."""

from __future__ import annotations

from sqlalchemy import text

from cass.extensions import db

DAYS_AHEAD = 3


def apply_retention(keep_days: int) -> int:
    """Make the coming days' partitions and drop those older than `keep_days`; return drops."""
    if keep_days < 1:
        raise ValueError("the message log keeps at least one day")
    dropped = db.session.execute(
        text("SELECT cass_ocpp_message_partitions(:keep, :ahead)"),
        {"keep": keep_days, "ahead": DAYS_AHEAD},
    ).scalar_one()
    db.session.commit()
    return int(dropped)
