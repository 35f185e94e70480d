"""Charging sessions: count, energy and revenue per day, week or month."""

from __future__ import annotations

from cass.services.reports import base

GROUPINGS = {"day": "Day", "week": "Week", "month": "Month"}


def build(f: base.Filters) -> base.Table:
    """Per period and currency: sessions started, kWh delivered, revenue (costs at stop).

    A session counts in the period it started in; energy and cost come once it has stopped.
    Periods with no sessions show as zero, so the chart's axis is the calendar.
    """
    site = ""
    if f.site is not None:
        site = " AND s.charger_id IN (SELECT id FROM charger WHERE site_id = :site)"
    rows = base.fetch(
        f"""
        WITH periods AS ({base.PERIODS}), counted AS (
            SELECT date_trunc(:unit, s.started_at AT TIME ZONE :zone) AS p, s.currency,
                   count(*) AS n, sum(s.energy_wh) AS wh, sum(s.cost) AS cost
            FROM charging_session s
            WHERE s.tenant_id = :tenant AND s.started_at >= :since AND s.started_at < :until
              {site}
            GROUP BY 1, 2
        )
        SELECT CAST(periods.p AS date), coalesce(counted.currency, ''), coalesce(counted.n, 0),
               round(coalesce(counted.wh, 0) / 1000.0, 3), coalesce(counted.cost, 0)
        FROM periods LEFT JOIN counted ON counted.p = periods.p
        ORDER BY 1, 2
        """,
        base.bind(f, unit=f.by),
    )
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
