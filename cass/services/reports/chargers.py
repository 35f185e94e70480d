"""Charger uptime and faults: the most faulty chargers, models and sites, and the error codes."""

from __future__ import annotations

from cass.models.ocpp import FAULT_PREDICATE
from cass.services import uptime
from cass.services.reports import base

GROUPINGS = {"charger": "Charger", "model": "Model", "site": "Site", "error_code": "Error code"}
# A fault (cass.models.ocpp.FAULT_PREDICATE) on a charger_event aliased "e".
FAULT = (
    "e.kind = 'status' AND (e.status = 'Faulted' OR coalesce(e.error_code, 'NoError') <> 'NoError')"
)
# The tenant's faults in the range, with the predicate of index ix_charger_event_tenant_faults.
FAULTS = f"""
    SELECT charger_id, at, error_code FROM charger_event
    WHERE tenant_id = :tenant AND at >= :since AND at < :until AND {FAULT_PREDICATE}
"""
KEYS = {
    "charger": "c.id",
    "model": "concat_ws(' ', c.manufacturer, c.model)",
    "site": "c.site_id",
}


def build(f: base.Filters) -> base.Table:
    """Per charger, model or site: chargers, how many faulted, faults and uptime in the range.

    Grouped by error code: the faults with each code and how many chargers reported it.
    Uptime is the share of the known time a charger was online (cass.services.uptime.presence).
    """
    site = " AND c.site_id = :site" if f.site is not None else ""
    if f.by == "error_code":
        return _by_code(f, site)
    rows = base.fetch(
        f"""
        WITH faults AS (SELECT charger_id, count(*) AS n FROM ({FAULTS}) AS f GROUP BY 1)
        SELECT {KEYS[f.by]}, count(*), count(faults.charger_id), coalesce(sum(faults.n), 0),
               array_agg(c.id)
        FROM charger c LEFT JOIN faults ON faults.charger_id = c.id
        WHERE c.tenant_id = :tenant {site}
        GROUP BY 1
        """,
        base.bind(f),
    )
    figures = uptime.presence([i for r in rows for i in r[4]], f.since, f.until)
    names = {}
    if f.by != "model":
        names = base.entity_names("charger" if f.by == "charger" else "site", [r[0] for r in rows])
    table = []
    for key, chargers, faulty, faults, ids in rows:
        up = sum(figures[i].up_seconds for i in ids if i in figures)
        down = sum(figures[i].down_seconds for i in ids if i in figures)
        label = names.get(key, key) if f.by != "model" else (key or "Unknown model")
        table.append((label, chargers, faulty, faults, _percent(up, up + down), base.hours(down)))
    table.sort(key=lambda r: (-r[3], r[4] if r[4] is not None else 101, str(r[0])))
    up_all = sum(a.up_seconds for a in figures.values())
    down_all = sum(a.down_seconds for a in figures.values())
    return base.Table(
        columns=(
            base.Column("group", GROUPINGS[f.by], "text"),
            base.Column("chargers", "Chargers"),
            base.Column("faulty", "Chargers with faults"),
            base.Column("faults", "Faults"),
            base.Column("uptime", "Uptime", "percent"),
            base.Column("downtime", "Offline (h)", "hours"),
        ),
        rows=table,
        totals=(
            "Total",
            base.total(table, 1),
            base.total(table, 2),
            base.total(table, 3),
            _percent(up_all, up_all + down_all),
            base.hours(down_all),
        ),
        chart=base.Chart("bar", ("faults",), horizontal=True, limit=15),
    )


def _by_code(f: base.Filters, site: str) -> base.Table:
    """Count the faults per error code, and the chargers that reported each."""
    # One pass over the faults: per code and charger first (a hash, not a sort of every fault
    # by charger for count(DISTINCT)); the last row (whole) is the chargers with any fault.
    found = base.fetch(
        f"""
        WITH pairs AS (
          SELECT coalesce(nullif(e.error_code, 'NoError'), 'Faulted (no code)') AS code,
                 e.charger_id, count(*) AS n
          FROM ({FAULTS}) AS e JOIN charger c ON c.id = e.charger_id
          WHERE c.tenant_id = :tenant {site}
          GROUP BY 1, 2
        )
        SELECT code, CAST(sum(n) AS bigint), count(*), false AS whole FROM pairs GROUP BY code
        UNION ALL
        SELECT NULL, CAST(sum(n) AS bigint), count(DISTINCT charger_id), true FROM pairs
        ORDER BY 4, 2 DESC, 1
        """,
        base.bind(f),
    )
    rows = [r[:3] for r in found if not r[3]]
    chargers = found[-1][2]
    return base.Table(
        columns=(
            base.Column("group", "Error code", "text"),
            base.Column("faults", "Faults"),
            base.Column("chargers", "Chargers reporting it"),
        ),
        rows=rows,
        totals=("Total", base.total(rows, 1), chargers),
        chart=base.Chart("bar", ("faults",), horizontal=True, limit=15),
    )


def _percent(part: float, whole: float) -> float | None:
    return base.percent(part, whole) if whole > 0 else None  # type: ignore[arg-type]


base.register(
    base.Report(
        slug="chargers",
        title="Charger uptime and faults",
        summary="Faults and uptime per charger, model or site, and the error codes reported.",
        filters=("site",),
        groupings=GROUPINGS,
        build=build,
    )
)
