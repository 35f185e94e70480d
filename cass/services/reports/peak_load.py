"""Peak load: the highest total power per quarter hour per site, per day, week or month, or the
top quarter hours with the connectors that drew it, and energy (cass.services.peak_load)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cass.services import peak_load as service
from cass.services.reports import base

GROUPINGS = {
    "site": "Site",
    "peak": "Top quarter hours",
    "day": "Day",
    "week": "Week",
    "month": "Month",
}
TOP = 20


def kw(value: float | None) -> float | None:
    """Return kW or kWh to three decimals (watt-hours: the spread of a register adds noise)."""
    return None if value is None else round(value, 3)


def local(instant: datetime | None, zone: str) -> str:
    """Return a quarter hour's start in `zone` with its offset (unambiguous on a DST night)."""
    if instant is None:
        return ""
    return instant.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="minutes")


def build(f: base.Filters) -> base.Table:
    """Per site, period or top quarter hour: the peak kW, when it began, and the energy."""
    groups = service.report(f.start, f.end, f.zone, f.by, site_id=f.site, top=TOP)
    if f.by == "peak":
        return _top(f, groups)
    if f.by == "site":
        names = base.entity_names("site", [g.key for g in groups if g.key is not None])
        rows = [
            (names.get(g.key, "No site"), kw(g.kw), local(g.start, f.zone), kw(g.kwh))
            for g in groups
        ]
        rows.sort(key=lambda r: (-(r[1] or 0), r[0]))
        first = base.Column("group", "Site", "text")
        chart = base.Chart("bar", ("kw",), horizontal=True, unit="kW", limit=15)
        totals: tuple[Any, ...] = ("Total", None, "", kw(sum((g.kwh for g in groups), 0.0)))
    else:
        found = {g.key: g for g in groups}
        empty = service.Group(None, None, None, 0.0)
        periods = [(day, found.get(day, empty)) for day in base.period_starts(f, f.by)]
        rows = [(day, kw(g.kw), local(g.start, f.zone), kw(g.kwh)) for day, g in periods]
        first = base.Column("period", GROUPINGS[f.by], "period")
        chart = base.Chart("bar", ("kwh",), unit="kWh")
        # The range's peak is the highest of its periods': the same sites' load throughout.
        best = max(groups, key=lambda g: (g.kw or 0, -g.start.timestamp() if g.start else 0),
                   default=empty)  # fmt: skip
        totals = (
            "Total",
            kw(best.kw),
            local(best.start, f.zone),
            kw(sum((g.kwh for g in groups), 0.0)),
        )
    return base.Table(
        columns=(
            first,
            base.Column("kw", "Peak kW", "kwh"),
            base.Column("at", "Peak quarter hour begins", "text"),
            base.Column("kwh", "Energy kWh", "kwh"),
        ),
        rows=rows,
        totals=totals,
        chart=chart,
        notes=[NOTE],
    )


def _top(f: base.Filters, groups: list[service.Group]) -> base.Table:
    """Return the top quarter hours of the chosen sites' load, highest first."""
    return base.Table(
        columns=(
            base.Column("at", "Quarter hour begins", "text"),
            base.Column("kw", "Load kW", "kwh"),
            base.Column("kwh", "Energy kWh", "kwh"),
            base.Column("chargers", "Connectors drawing power", "text"),
        ),
        rows=[(local(g.start, f.zone), kw(g.kw), kw(g.kwh), g.chargers) for g in groups],
        chart=base.Chart("bar", ("kw",), horizontal=True, unit="kW"),
        notes=[
            f"The {TOP} quarter hours of the highest load of the "
            f"{'site' if f.site else 'sites together'}.",
            NOTE,
        ],
    )


NOTE = (
    "Load per quarter hour: the mean Power.Active.Import of each connector, or its "
    "Energy.Active.Import.Register delta ÷ 0.25 h where it sent no power; times in the "
    "tenant's zone."
)

base.register(
    base.Report(
        slug="peak-load",
        title="Peak load",
        summary=(
            "The highest total power per 15-minute interval per site, day, week or month, the "
            "top intervals with the connectors that drew it, and energy."
        ),
        filters=("site",),
        groupings=GROUPINGS,
        build=build,
    )
)
