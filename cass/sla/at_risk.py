"""`/sla/at-risk`: the tickets whose SLA clocks are warned, breached or due soon, soonest first."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, request
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from cass.bounds import parse_id, parse_moment
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
        return parse_moment(due), parse_id(ident)
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


@bp.app_template_global("sla_badge")
def sla_badge(badge: sla.Badge) -> Markup:
    """Write a ticket's most urgent clock as the board's cards and the list's rows show it:
    "Resolution: 1 h 05 min left", "On site: late by 20 min", "First response: paused"."""
    if badge.state == "paused":
        left = "paused"
    else:
        left = business_left(badge.left, badge.state == "breached")
    state, label = escape(badge.state), escape(badge.label)
    # An f-string: Markup.format() would cost ~35 µs a badge, 50 times a list page.
    html = f'<span class="sla-badge sla-{state}" title="{label} SLA">{label}: {escape(left)}</span>'
    return Markup(html)  # noqa: S704 (each value is escaped above)


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
