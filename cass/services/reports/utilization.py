"""Utilization: the share of connector-time charging, occupied and available per site, charger
or connector, sessions per day, mean energy and duration (cass.services.utilization)."""

from __future__ import annotations

from typing import Any

from cass.services import utilization as service
from cass.services.reports import base

GROUPINGS = {"site": "Site", "charger": "Charger", "connector": "Connector"}
SHARES = ("charging", "occupied", "available", "offline", "other", "unknown")
LABELS = {
    "charging": "Charging",
    "occupied": "Occupied",
    "available": "Available",
    "offline": "Offline",
    "other": "Faulted or other",
    "unknown": "Unknown",
}


def run(f: base.Filters) -> service.Utilization:
    """Return the utilization behind the report (also what the pages' panels show)."""
    return service.utilization(f.start, f.end, f.zone, f.by, site_id=f.site)


def build(f: base.Filters) -> base.Table:
    """Per site, charger or connector: connector-time shares, sessions, mean kWh and hours."""
    result = run(f)
    names = group_names(f.by, list(result.groups))
    rows = [(names[key], *_figures(usage)) for key, usage in result.groups.items()]
    rows.sort(key=lambda r: (-(r[2] or 0), str(r[0])))
    return base.Table(
        columns=(
            base.Column("group", GROUPINGS[f.by], "text"),
            base.Column("connectors", "Connectors"),
            *(base.Column(s, f"{LABELS[s]} (%)", "percent") for s in SHARES),
            base.Column("sessions", "Sessions"),
            base.Column("per_day", "Sessions per day", "hours"),
            base.Column("mean_kwh", "Mean kWh", "kwh"),
            base.Column("mean_hours", "Mean duration (h)", "hours"),
        ),
        rows=rows,
        totals=("Total", *_figures(result.total)),
        chart=base.Chart(
            "bar",
            ("charging", "occupied", "available"),
            stacked=True,
            horizontal=True,
            unit="%",
            limit=15,
        ),
        notes=[
            "Shares of connector-time in the period up to now; a connector's state at the start "
            "is its last status before it. Sessions are those started in the period."
        ],
    )


def _figures(usage: service.Usage) -> tuple[Any, ...]:
    """Return a row's figures: connectors, the shares in percent, sessions and their means."""
    shares = [usage.share(s) for s in SHARES]
    per_day = usage.sessions_per_day
    return (
        usage.connectors,
        *(round(100 * s, 1) if s is not None else None for s in shares),
        usage.sessions,
        round(per_day, 2) if per_day is not None else None,
        round(usage.mean_kwh, 1) if usage.mean_kwh is not None else None,
        round(usage.mean_hours, 2) if usage.mean_hours is not None else None,
    )


def group_names(by: str, keys: list[Any]) -> dict[Any, str]:
    """Return each group's label: the site's name, the charger's OCPP id, "OCPP-ID #n"."""
    if by == "site":
        names = base.entity_names("site", keys)
        return {k: names.get(k, "No site") for k in keys}
    ids = [k[0] for k in keys] if by == "connector" else keys
    chargers = base.entity_names("charger", ids)
    if by == "charger":
        return {k: chargers.get(k, str(k)) for k in keys}
    return {k: f"{chargers.get(k[0], k[0])} #{k[1]}" for k in keys}


base.register(
    base.Report(
        slug="utilization",
        title="Utilization",
        summary=(
            "Share of connector-time charging, occupied and available per site, charger or "
            "connector; sessions per day, mean energy and duration."
        ),
        filters=("site",),
        groupings=GROUPINGS,
        build=build,
    )
)
