"""`/sla/at-risk`: the tickets whose SLA clocks are warned, breached or due soon, soonest first."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, request
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.models import CLOCKS
from cass.permissions import requires
from cass.rendering import render
from cass.services import sla, tickets

bp = Blueprint("at_risk", __name__, url_prefix="/sla")

HORIZONS = (1, 4, 8, 24, 72)
PAGE = 50


def _horizon() -> int:
    try:
        hours = int(request.args.get("hours", "4"))
    except ValueError:
        return 4
    return hours if hours in HORIZONS else 4


def _after() -> tuple[datetime, int] | None:
    """Read the keyset of "load more": the last row's due time and clock id."""
    due, _, ident = (request.args.get("after") or "").partition("|")
    try:
        return datetime.fromisoformat(due), int(ident)
    except ValueError:
        return None


@bp.app_template_filter("business_left")
def business_left(left: timedelta | None, breached: bool = False) -> str:
    """Write business time left as "1 h 05 min left", or for a breached clock "late by 20 min"
    (just "late" when no business time has passed since, e.g. overnight)."""
    if left is None:
        return ""
    minutes = int(abs(left.total_seconds()) // 60)
    hours, rest = divmod(minutes, 60)
    text = f"{hours} h {rest:02d} min" if hours else f"{rest} min"
    if breached or left.total_seconds() < 0:
        return f"late by {text}" if minutes else "late"
    return f"{text} left"


@bp.get("/at-risk")
@requires("tickets.view")
def index() -> Response:
    """List the clocks at risk; htmx "load more" gets the next rows only."""
    hours = _horizon()
    after = _after()
    rows = sla.at_risk(
        tickets.visible(current_user), timedelta(hours=hours), after=after, limit=PAGE + 1
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    context = {
        "rows": rows,
        "more": more,
        "hours": hours,
        "horizons": HORIZONS,
        "clocks": CLOCKS,
        "prefix": tickets.tenant_prefix(),
        "format_key": tickets.format_key,
    }
    fragment = "sla/_at_risk_rows.html" if after is not None else "sla/_at_risk_table.html"
    return render("sla/at_risk.html", fragment, **context)
