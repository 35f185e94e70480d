"""The utilization and peak-load panels of the charger and site pages: a period, figures, charts.

Each panel is a route of its page's blueprint; htmx gets the panel (loaded when the page shows
it, and again when the period changes), other requests a page holding it, so it works without
JavaScript too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request
from markupsafe import Markup
from werkzeug.wrappers import Response

from cass.charts import heat_map
from cass.rendering import render
from cass.services import utilization as usage
from cass.services.reports import BadFilters, base, parse_filters
from cass.services.reports.utilization import LABELS, SHARES, group_names

PAGE = "usage/page.html"
HOURS = [f"{h:02d}" for h in range(24)]


def period(args: Mapping[str, Any]) -> base.Filters:
    """Return the panel's period from `args` (the reports' rules: the last 30 days by default,
    in the tenant's zone); raise BadFilters naming a bad date."""
    return parse_filters(base.REPORTS["utilization"], {k: args.get(k) for k in ("start", "end")},
                         base.tenant_zone())  # fmt: skip


def heat(result: usage.Utilization, name: str) -> Markup:
    """Return the weekday x hour charging shares of `result` as an SVG heat map, in percent."""
    cells = [[None if v is None else round(100 * v, 1) for v in day] for day in result.heat]
    return heat_map(
        f"Share of connector-time charging by weekday and hour, {name}",
        usage.WEEKDAYS,
        HOURS,
        cells,
        unit="%",
    )


def utilization_panel(url: str, name: str, back: str, level: str, **scope: Any) -> Response:
    """Answer with the utilization panel at `url` of the page `back` (per `level`, of the
    chargers in `scope`)."""
    context: dict[str, Any] = {"url": url, "name": name, "back": back, "panel": "utilization"}
    try:
        f = period(request.args)
    except BadFilters as bad:
        return render(PAGE, "usage/_utilization.html", 422, errors=bad.errors, **context)
    result = usage.utilization(f.start, f.end, f.zone, level, **scope)
    names = group_names(level, list(result.groups))
    if level == "connector":
        names = {key: f"Connector {key[1]}" for key in result.groups}
    return render(
        PAGE,
        "usage/_utilization.html",
        errors={},
        filters=f,
        result=result,
        names=names,
        shares=SHARES[:3],
        labels=LABELS,
        heat=heat(result, name),
        **context,
    )
