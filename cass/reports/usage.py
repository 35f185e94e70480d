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

from cass.charts import Series, bar_chart, heat_map
from cass.rendering import render
from cass.services import peak_load as peak
from cass.services import utilization as usage
from cass.services.reports import BadFilters, base, parse_filters
from cass.services.reports.peak_load import local
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


def energy_unit(f: base.Filters) -> str:
    """Return the period the panel sums energy by: days up to two months, weeks up to a year,
    then months (a chart of more bars than that reads as a smear)."""
    days = (f.end - f.start).days + 1
    return "day" if days <= 62 else "week" if days <= 366 else "month"


def peak_load_panel(
    url: str, name: str, back: str, site_id: int | None, charger_id: int | None = None
) -> Response:
    """Answer with the peak-load panel at `url` of the page `back` for site `site_id` (or the
    charger `charger_id` of it)."""
    context: dict[str, Any] = {
        "url": url,
        "name": name,
        "back": back,
        "panel": "peak_load",
        "site_id": site_id,
    }
    try:
        f = period(request.args)
    except BadFilters as bad:
        return render(PAGE, "usage/_peak_load.html", 422, errors=bad.errors, **context)
    unit = energy_unit(f)
    result = peak.peak_load(
        site_id, f.start, f.end, f.zone, top=10, unit=unit, charger_id=charger_id
    )
    chart = bar_chart(
        f"Energy per {unit}, {name}",
        [day.isoformat() for day, _ in result.energy],
        [Series("Energy kWh", [round(kwh, 1) for _, kwh in result.energy])],
        unit="kWh",
    )
    return render(
        PAGE,
        "usage/_peak_load.html",
        errors={},
        filters=f,
        result=result,
        peaks=[(local(p.start, f.zone), p.kw) for p in result.peaks],
        unit=unit,
        total_kwh=sum(kwh for _, kwh in result.energy),
        chart=chart,
        **context,
    )
