"""Utilization from the report snapshots (issue 10, point 3): the job stores each day's figures,
a long period reads them, and its utilization equals the raw computation at every level and in
the heat map, before and after late changes to past days (marked stale by the triggers of
migrations 0014 and 0024).

Two weeks and a half of history (19 October to 5 November 2026, over the end of summer time) of
three chargers in a tenant whose day is Berlin's, written set-based; the raw figures are computed
with `snapshots.raw()`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cass.services import utilization as u
from cass.services.reports import snapshots
from cass.tenancy import tenant_context
from tests.ocpp_support import execute, query

ZONE = "Europe/Berlin"
BERLIN = ZoneInfo(ZONE)
FIRST, LAST = date(2026, 10, 19), date(2026, 11, 5)
CHARGERS = ("DEMO-CP-0001", "DEMO-CP-0002", "DEMO-CP-0003")
# Periods: the whole history and a day either side, a week over the 25-hour day, one day, and
# one from the history's end up to after today (today computed raw, the future not counted).
RANGES = [
    (FIRST - timedelta(days=1), LAST + timedelta(days=1)),
    (date(2026, 10, 22), date(2026, 10, 28)),
    (date(2026, 10, 25), date(2026, 10, 25)),
    (date(2026, 11, 3), date.today() + timedelta(days=2)),
]
H = 3600.0


def local(day: date, hours: float) -> datetime:
    """Return the instant `hours` after local midnight of `day` in Berlin."""
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC) + timedelta(
        hours=hours
    )


@pytest.fixture
def history(database_url, demo) -> dict[str, Any]:
    """Seed the chargers' status changes, presence and sessions (set-based); return the ids."""
    execute(database_url, "UPDATE tenant SET timezone = %s WHERE slug = 'demo'", (ZONE,))
    chargers = [demo[c] for c in CHARGERS]
    binds = {"chargers": chargers, "first": FIRST, "last": LAST, "zone": ZONE}
    days = """
        FROM generate_series(CAST(%(first)s AS timestamp), %(last)s, interval '1 day') AS d
        CROSS JOIN unnest(CAST(%(chargers)s AS bigint[])) WITH ORDINALITY AS c(id, n)
        CROSS JOIN (VALUES (1), (2)) AS k(no)
    """
    execute(
        database_url,
        """
        INSERT INTO charger_event (tenant_id, charger_id, at, kind)
        SELECT tenant_id, id, CAST(%(first)s AS timestamptz) - interval '10 days', 'online'
        FROM charger WHERE id = ANY(%(chargers)s)
        """,
        binds,
    )
    # Each connector: preparing, charging, (connector 1) suspended, then available in the
    # morning; every third day charging again from 22:30 to 01:30 the next day; connector 2
    # faulted 15:00-16:00 on Wednesdays. The second charger is offline 12:00-14:30 every
    # fourth day.
    execute(
        database_url,
        f"""
        INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status)
        SELECT %(t)s, c.id, k.no,
               (d + e.at + (c.n * 10 + k.no * 5) * interval '1 minute') AT TIME ZONE %(zone)s,
               'status', e.status
        {days}
        CROSS JOIN (VALUES (interval '7 hours', 'Preparing'),
                           (interval '7.25 hours', 'Charging'),
                           (interval '10.6 hours', 'SuspendedEV'),
                           (interval '11 hours', 'Available'),
                           (interval '22.5 hours', 'Charging'),
                           (interval '25.5 hours', 'Available'),
                           (interval '15 hours', 'Faulted'),
                           (interval '16 hours', 'Available')) AS e(at, status)
        WHERE (e.status <> 'SuspendedEV' OR k.no = 1)
          AND (e.at < interval '22 hours' OR extract(doy FROM d) %% 3 = 0)
          AND (e.at < interval '15 hours' OR e.at > interval '16 hours' OR k.no = 2
               AND extract(isodow FROM d) = 3)
        """,
        {**binds, "t": demo["demo"]},
    )
    execute(
        database_url,
        """
        INSERT INTO charger_event (tenant_id, charger_id, at, kind)
        SELECT %(t)s, %(charger)s, (d + e.at) AT TIME ZONE %(zone)s, e.kind
        FROM generate_series(CAST(%(first)s AS timestamp), %(last)s, interval '1 day') AS d
        CROSS JOIN (VALUES (interval '12 hours', 'offline'), (interval '14.5 hours', 'online'))
            AS e(at, kind)
        WHERE extract(doy FROM d) %% 4 = 1
        """,
        {**binds, "t": demo["demo"], "charger": chargers[1]},
    )
    # A session per morning charge (no energy every fifth day) and per night charge; the last
    # night's still running.
    execute(
        database_url,
        f"""
        INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at,
                                      stopped_at, energy_wh)
        SELECT %(t)s, c.id, k.no, (d + s.at + (c.n * 10 + k.no * 5) * interval '1 minute')
                                  AT TIME ZONE %(zone)s,
               CASE WHEN d < %(last)s OR s.at < interval '22 hours'
                    THEN (d + s.at + s.len + (c.n * 10 + k.no * 5) * interval '1 minute')
                         AT TIME ZONE %(zone)s END,
               CASE WHEN extract(doy FROM d) %% 5 <> 0 THEN 1000 * c.n + 100 * k.no END
        {days}
        CROSS JOIN (VALUES (interval '7.25 hours', interval '3.75 hours'),
                           (interval '22.5 hours', interval '3 hours')) AS s(at, len)
        WHERE s.at < interval '22 hours' OR extract(doy FROM d) %% 3 = 0
        """,
        {**binds, "t": demo["demo"]},
    )
    site = query(database_url, "SELECT site_id FROM charger WHERE id = %s", (chargers[0],))[0][0]
    return {"tenant": demo["demo"], "chargers": chargers, "site": site}


def measure(app, tenant: int, start: date, end: date, level: str, **scope: Any) -> u.Utilization:
    with app.app_context(), tenant_context(tenant):
        return u.utilization(start, end, ZONE, level, **scope)


def figures(result: u.Utilization) -> tuple[Any, ...]:
    """Return everything a result tells, comparable across runs."""
    return (
        {k: vars(g) for k, g in result.groups.items()},
        vars(result.total),
        result.heat,
        result.sites,
    )


def everything(app, history: dict[str, Any], ranges=RANGES) -> dict[str, Any]:
    """Return the utilization of every range, level and scope (the tenant, the site), each as
    read (stored days and raw) and as computed raw, in one transaction (one now())."""
    out = {}
    with app.app_context(), tenant_context(history["tenant"]):
        for start, end in ranges:
            for level in u.LEVELS:
                for scope in ({}, {"site_id": history["site"]}):
                    read = u.utilization(start, end, ZONE, level, **scope)
                    with snapshots.raw():
                        raw = u.utilization(start, end, ZONE, level, **scope)
                    out[f"{start} {end} {level} {scope}"] = (figures(read), figures(raw))
    return out


def inexact(results: dict[str, Any]) -> list[str]:
    """Return the results whose figures as read are not the raw computation's."""
    return [name for name, (read, raw) in results.items() if read != raw]


def differences(a: dict[str, Any], b: dict[str, Any], which: int = 0) -> list[str]:
    """Return the results that differ between `a` and `b` (as read, or raw with which=1)."""
    return [k for k in a if a[k][which] != b[k][which]]


def refresh(app) -> int:
    with app.app_context():
        return snapshots.refresh()


def store(app, history: dict[str, Any]) -> None:
    """Ask for the site's figures (so the job keeps its variant too), then run the job."""
    measure(app, history["tenant"], FIRST, FIRST, "site", site_id=history["site"])
    assert refresh(app) > 0


def statuses(
    database_url: str,
    tenant: int,
    charger: int,
    connector: int,
    day: date,
    changes: tuple[tuple[float, str], ...],
) -> None:
    """Write status changes of a connector at local hours of `day`, as the bridge would."""
    for hours, status in changes:
        execute(
            database_url,
            "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status)"
            " VALUES (%s, %s, %s, %s, 'status', %s)",
            (tenant, charger, connector, local(day, hours), status),
        )


def marks(database_url: str, tenant: int) -> set[date]:
    rows = query(
        database_url, "SELECT day FROM report_snapshot_dirty WHERE tenant_id = %s", (tenant,)
    )
    return {r[0] for r in rows}


def test_stored_days_equal_the_raw_computation_at_every_level(app, history, database_url):
    # Asking registers the site's variant; with nothing stored yet the figures are raw.
    unstored = everything(app, history)
    assert inexact(unstored) == []
    assert refresh(app) > 0

    tenant = history["tenant"]
    spans = query(
        database_url,
        "SELECT variant FROM report_snapshot_span WHERE tenant_id = %s AND report = 'utilization'"
        " ORDER BY 1",
        (tenant,),
    )
    # One variant per site filter, whatever the level: the levels are grouped in Python.
    assert set(spans) == {
        (f"zone=Europe%2FBerlin&site={history['site']}",),
        ("zone=Europe%2FBerlin",),
    }
    rows = query(
        database_url,
        "SELECT variant, count(*), min(day), max(day) FROM report_snapshot"
        " WHERE tenant_id = %s AND report = 'utilization' GROUP BY 1 ORDER BY 1",
        (tenant,),
    )
    assert len(rows) == 2 and all(n > 0 for _, n, _, _ in rows)
    # Nothing is known before the first status (online alone says nothing of a connector's
    # state): no rows for those days, back to 1990 (unknown time is not stored). After the
    # history the last statuses hold: every day up to yesterday has rows.
    assert all(first == FIRST for _, _, first, _ in rows)
    assert all(last > LAST for _, _, _, last in rows)

    stored = everything(app, history)
    assert inexact(stored) == []
    # The past is as it was (today's figures grew meanwhile).
    today = {n for n in stored if n.startswith(f"{RANGES[3][0]} {RANGES[3][1]}")}
    assert set(differences(stored, unstored, which=1)) <= today
    whole = measure(app, tenant, *RANGES[0], "charger")
    assert whole.total.connectors == 2 * 12
    sessions = query(
        database_url,
        "SELECT count(*) FROM charging_session WHERE started_at >= %s AND started_at < %s",
        (local(RANGES[0][0], 0), local(RANGES[0][1] + timedelta(days=1), 0)),
    )
    assert whole.total.sessions == sessions[0][0] > 0
    assert whole.heat[2][8] and whole.heat[6][2] is not None  # Wednesday 08:00, Sunday 02:00

    # A charger's panel is computed raw from the same select, with no variant of its own.
    charger = history["chargers"][0]
    with app.app_context(), tenant_context(tenant):
        for start, end in RANGES:
            panel = u.utilization(start, end, ZONE, "connector", charger_ids=[charger])
            site = u.utilization(start, end, ZONE, "connector", site_id=history["site"])
            assert {k: vars(g) for k, g in panel.groups.items()} == {
                k: vars(g) for k, g in site.groups.items() if k[0] == charger
            }
    assert len(query(database_url, "SELECT 1 FROM report_snapshot_span WHERE report = 'utilization'"
                                   " AND tenant_id = %s", (tenant,))) == 2  # fmt: skip


def test_stored_days_are_what_a_period_reads(app, history, database_url):
    tenant, charger = history["tenant"], history["chargers"][0]
    day = date(2026, 10, 27)
    store(app, history)
    past = RANGES[:3]
    before = everything(app, history, past)
    # A past day's charge deleted behind the triggers' back (its mark dropped): the stored day
    # still counts it, the raw rows no longer do.
    execute(
        database_url,
        "DELETE FROM charger_event WHERE charger_id = %s AND connector_no = 1 AND at = %s",
        (charger, local(day, 7.25 + 15 / 60)),
    )
    assert day in marks(database_url, tenant)
    execute(database_url, "DELETE FROM report_snapshot_dirty WHERE tenant_id = %s", (tenant,))
    after = everything(app, history, past)
    changed = differences(before, after, which=1)
    assert changed and all(str(RANGES[2][0]) not in name for name in changed)
    assert differences(before, after) == [] and sorted(inexact(after)) == sorted(changed)
    # Marked again, the day is computed from the raw rows at once.
    execute(
        database_url,
        "INSERT INTO report_snapshot_dirty (tenant_id, day) VALUES (%s, %s)",
        (tenant, day),
    )
    assert inexact(everything(app, history)) == []


def test_a_late_status_event_counts_at_once_and_after_the_next_run(app, history, database_url):
    tenant, charger = history["tenant"], history["chargers"][0]
    day = date(2026, 10, 28)  # a Wednesday: connector 1 available from 11:20 to 22:30
    store(app, history)
    before = measure(app, tenant, *RANGES[0], "connector").groups[(charger, 1)]
    # The bridge delivers a fault of that afternoon late, and a session's stop is corrected.
    statuses(database_url, tenant, charger, 1, day, ((12, "Faulted"), (15, "Available")))
    execute(
        database_url,
        "UPDATE charging_session SET stopped_at = stopped_at + interval '1 hour'"
        " WHERE charger_id = %s AND connector_no = 1 AND started_at = %s",
        (charger, local(date(2026, 10, 21), 7.25 + 15 / 60)),
    )
    assert {day, date(2026, 10, 21)} <= marks(database_url, tenant)

    assert inexact(everything(app, history)) == []
    after = measure(app, tenant, *RANGES[0], "connector").groups[(charger, 1)]
    assert after.seconds["other"] - before.seconds["other"] == 3 * H
    assert before.seconds["available"] - after.seconds["available"] == 3 * H
    assert after.duration_seconds - before.duration_seconds == H

    refresh(app)
    assert marks(database_url, tenant) == set()
    assert inexact(everything(app, history)) == []
    stored = query(
        database_url,
        "SELECT figures[5] FROM report_snapshot WHERE tenant_id = %s AND report = 'utilization'"
        " AND variant = 'zone=Europe%%2FBerlin' AND day = %s AND key = %s",
        (tenant, day, f"c:{charger}:1"),
    )
    assert stored == [(3 * H,)]  # the day's seconds "other"


def test_a_connector_known_only_from_its_changes_counts_on_their_days(app, history, database_url):
    tenant, charger = history["tenant"], history["chargers"][0]
    day = date(2026, 10, 22)
    # Connector 3 has no connector row (the bridge would have made one): charging 09:00-10:00.
    statuses(database_url, tenant, charger, 3, day, ((9, "Charging"), (10, "Available")))
    store(app, history)
    assert inexact(everything(app, history)) == []
    week = measure(app, tenant, *RANGES[1], "connector", charger_ids=[charger])
    third = week.groups[(charger, 3)]
    # Counted that day only: unknown until 09:00, an hour charging, 14 hours available; unknown
    # the other six days (one of 25 hours).
    assert third.seconds["charging"] == H and third.seconds["available"] == 14 * H
    assert third.period_seconds == (7 * 24 + 1) * H
    assert third.seconds["unknown"] == third.period_seconds - 15 * H
    assert week.total.connectors == 3


def test_a_moved_charger_counts_for_its_new_site_on_every_day(app, history, database_url):
    tenant, moved = history["tenant"], history["chargers"][0]
    other = query(
        database_url,
        "SELECT id FROM site WHERE tenant_id = %s AND id <> %s ORDER BY id LIMIT 1",
        (tenant, history["site"]),
    )[0][0]
    # Without sessions (or meter values) only its status history says which days it counts.
    execute(database_url, "DELETE FROM charging_session WHERE charger_id = %s", (moved,))
    with app.app_context(), tenant_context(tenant):  # both sites' variants asked for
        for site_id in (history["site"], other):
            u.utilization(FIRST, FIRST, ZONE, "charger", site_id=site_id)
    assert refresh(app) > 0
    execute(database_url, "UPDATE charger SET site_id = %s WHERE id = %s", (other, moved))
    # Every day since the charger's history began is stale, not only the days it wrote on.
    assert set(d for d in marks(database_url, tenant) if FIRST <= d <= LAST) == {
        FIRST + timedelta(days=n) for n in range((LAST - FIRST).days + 1)
    }

    def both_sites() -> dict[str, Any]:
        out = {}
        with app.app_context(), tenant_context(tenant):
            for site_id in (history["site"], other):
                read = u.utilization(*RANGES[0], ZONE, "charger", site_id=site_id)
                with snapshots.raw():
                    raw = u.utilization(*RANGES[0], ZONE, "charger", site_id=site_id)
                out[site_id] = (figures(read), figures(raw))
        return out

    at_once = both_sites()
    assert inexact(at_once) == []
    assert moved in at_once[other][0][0] and moved not in at_once[history["site"]][0][0]
    assert refresh(app) > 0
    assert both_sites() == at_once
