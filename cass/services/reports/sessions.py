"""Charging sessions: count, energy and revenue per day, week or month."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from cass.services.reports import base, snapshots

GROUPINGS = {"day": "Day", "week": "Week", "month": "Month"}


def _select(f: base.Filters) -> str:
    """Select per day of start and currency: sessions, watt-hours and costs."""
    site = ""
    if f.site is not None:
        site = " AND s.charger_id IN (SELECT id FROM charger WHERE site_id = :site)"
    return f"""
        SELECT CAST(s.started_at AT TIME ZONE :zone AS date), coalesce(s.currency, ''),
               count(*), coalesce(sum(s.energy_wh), 0), coalesce(sum(s.cost), 0)
        FROM charging_session s
        WHERE s.tenant_id = :tenant AND s.started_at >= :since AND s.started_at < :until {site}
        GROUP BY 1, 2
    """


FACTS = snapshots.register(
    snapshots.Facts(
        report="sessions",
        measures=("sessions", "wh", "cost"),
        depends=("site",),
        select=_select,
    )
)
KWH = Decimal("0.001")


def build(f: base.Filters) -> base.Table:
    """Per period and currency: sessions started, kWh delivered, revenue (costs at stop).

    A session counts in the period it started in; energy and cost come once it has stopped.
    Periods with no sessions show as zero, so the chart's axis is the calendar.
    """
    sums = snapshots.figures(FACTS, f, unit=f.by)
    currencies_of: dict[date, list[str]] = {}
    for period, currency in sorted(sums):
        currencies_of.setdefault(period, []).append(currency)
    rows = []
    for period in base.period_starts(f, f.by):
        for currency in currencies_of.get(period, [""]):
            n, wh, cost = sums.get((period, currency), [Decimal(0)] * 3)
            rows.append((period, currency, int(n), (wh / 1000).quantize(KWH), cost))
    currencies = sorted({r[1] for r in rows if r[1]})
    return base.Table(
        columns=(
            base.Column("period", GROUPINGS[f.by], "period"),
            base.Column("currency", "Currency", "text"),
            base.Column("sessions", "Sessions"),
            base.Column("kwh", "Energy (kWh)", "kwh"),
            base.Column("revenue", "Revenue", "money"),
        ),
        rows=rows,
        totals=(
            "Whole period",
            currencies[0] if len(currencies) == 1 else "",
            base.total(rows, 2),
            base.total(rows, 3),
            base.total(rows, 4) if len(currencies) <= 1 else None,
        ),
        chart=base.Chart("bar", ("kwh",), unit="kWh"),
        notes=(
            ["Revenue is in more than one currency: the total is left out."]
            if len(currencies) > 1
            else []
        ),
    )


base.register(
    base.Report(
        slug="sessions",
        title="Charging sessions, energy and revenue",
        summary="Sessions started, kWh delivered and revenue per day, week or month.",
        filters=("site",),
        groupings=GROUPINGS,
        build=build,
    )
)
