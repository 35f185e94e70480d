"""The chargers blueprint (its views live in routes.py) and its template filters.

No URL prefix: the pages are /chargers and /chargers/<ocpp_id>, their live streams sit beside
the general one as /events/chargers and /events/chargers/<ocpp_id> (any word after /chargers/
may be an OCPP id).
"""

from datetime import UTC, datetime, timedelta

from flask import Blueprint

bp = Blueprint("chargers", __name__)

# How a connector status looks: free, in use, broken (anything else: idle). A Jinja global, so
# macros imported without the context see it too.
CONNECTOR_TONES = {
    "Available": "ok",
    "Faulted": "bad",
    **{
        status: "busy"
        for status in (
            "Preparing",
            "Charging",
            "SuspendedEVSE",
            "SuspendedEV",
            "Finishing",
            "Occupied",
            "Reserved",
        )
    },
}
bp.add_app_template_global(CONNECTOR_TONES, "connector_tones")


@bp.app_template_filter("utc")
def utc(value: datetime | None, seconds: bool = False) -> str:
    """Format a moment in UTC, e.g. 2026-11-28 14:30 (every time on these pages is UTC)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@bp.app_template_filter("span")
def span(value: timedelta | None) -> str:
    """Format a duration as 1 h 05 min, 12 min or 40 s."""
    if value is None:
        return ""
    total = max(0, int(value.total_seconds()))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min" if minutes else f"{seconds} s"
