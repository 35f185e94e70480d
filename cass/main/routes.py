"""The home page of each role: its dashboard, live, and for staff a charger lookup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, current_app, request
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from cass.chargers import live
from cass.charts import Series, bar_chart
from cass.models import CLOCKS
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import dashboard, fleet

bp = Blueprint("main", __name__)

# The order of a staff home page's parts: agents look a charger up on every call, so the
# lookup comes first for them; engineers start from their own work.
LAYOUTS = {
    "call_center": ("lookup", "fleet", "tickets"),
    "as_engineer": ("tickets", "lookup", "fleet"),
}
LAYOUT = ("tickets", "fleet", "lookup")
# As the charger list: the first event of a quiet spell refreshes at once, then at most one
# refresh per kind every 2 s (the last event always), however many events a burst holds.
LIVE_INTERVAL = 2.0
LIVE_KINDS = frozenset({"ticket", "charger"})


def _page(query: str = "") -> Response:
    """Render the signed-in user's whole home page."""
    board = dashboard.for_user(current_user)
    if current_user.role == "vendor":
        return render(
            "main/vendor_home.html", vendor=current_user.vendor, dash=board, clocks=CLOCKS
        )
    return render(
        "main/home.html",
        dash=board,
        clocks=CLOCKS,
        layout=LAYOUTS.get(current_user.role, LAYOUT),
        query=query,
        results=fleet.search_chargers(query),
    )


@bp.get("/")
@requires("home.view")
def home() -> Response:
    """Show the role's home page; for htmx, the charger lookup's results."""
    query = request.args.get("q", "")
    if current_user.role != "vendor" and wants_fragment():
        # The lookup searches as the agent types: it must not pay for the dashboard.
        return render(
            "main/_charger_results.html", query=query, results=fleet.search_chargers(query)
        )
    return _page(query)


@bp.get("/dashboard/tickets")
@requires("tickets.view")
def tickets_section() -> Response:
    """Show the role's ticket figures: the section for htmx, else the whole home page."""
    if not wants_fragment():
        return _page()
    return render("main/_tickets.html", panel=dashboard.ticket_panel(current_user), clocks=CLOCKS)


@bp.get("/dashboard/fleet")
@requires("chargers.view")
def fleet_section() -> Response:
    """Show the chargers by state and their faults per day: the section for htmx, else the
    whole home page."""
    if not wants_fragment():
        return _page()
    return render("main/_fleet.html", fleet=dashboard.fleet(current_user))


def _dashboard_event(event: dict[str, Any]) -> bool:
    return event.get("kind") in LIVE_KINDS


@bp.get("/events/dashboard")
@requires("home.view")
def events() -> Response:
    """Stream the tenant's ticket and charger events for the dashboard, coalesced (SSE)."""
    interval = float(current_app.config.get("DASHBOARD_LIVE_INTERVAL", LIVE_INTERVAL))
    return live.respond(_dashboard_event, interval)


@bp.app_template_global("count_chart")
def count_chart(
    title: str,
    counts: Sequence[tuple[str, int]],
    series: str,
    desc: str,
    labels: Mapping[str, str] | None = None,
) -> Markup:
    """Draw counts per key as a one-series bar chart, its keys named by `labels`, described
    by `desc` followed by every count (the numbers a screen reader reads out)."""
    names = [labels.get(key, key) if labels else key for key, _ in counts]
    listed = ", ".join(f"{name} {n}" for name, (_, n) in zip(names, counts, strict=True))
    return bar_chart(
        title, names, [Series(series, [n for _, n in counts])], desc=f"{desc} {listed}."
    )


@bp.app_template_global("faults_chart")
def faults_chart(fleet: dashboard.Fleet) -> Markup:
    """Draw the fleet's faults per day as a bar chart, one bar a day in the tenant's zone."""
    days = [f"{day.day} {day:%b}" for day, _ in fleet.faults]
    listed = ", ".join(f"{d} {n}" for d, (_, n) in zip(days, fleet.faults, strict=True))
    return bar_chart(
        f"Connector faults per day, last {len(days)} days",
        days,
        [Series("Faults", [n for _, n in fleet.faults])],
        desc=f"Connector faults per day ({fleet.zone} time), {fleet.fault_total} in all: {listed}.",
    )


@bp.app_template_filter("hours_text")
def hours_text(hours: float | None) -> str:
    """Write a mean time in hours as people read it: "45 min", "5.2 h", "3.4 d", or "—"."""
    if hours is None:
        return "—"
    if hours < 1:
        return f"{round(hours * 60)} min"
    if hours < 72:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"
