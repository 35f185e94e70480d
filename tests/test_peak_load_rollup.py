"""Peak load from the stored quarter hours (issue 10, point 3): the snapshot job keeps every
site's load per quarter hour in `site_load`; a period reads the stored days and computes the
rest, and the answers equal the raw computation's, also for register readings paired across
midnight, late samples (marked stale, computed raw until the job runs again) and a charger
moved to another site. Register readings further apart than `GAP` pair with nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cass.services import peak_load as p
from cass.services.reports import snapshots
from cass.tenancy import tenant_context
from tests.test_peak_load import BERLIN, ENERGY, POWER, at

MON, TUE, WED, THU = (date(2026, 1, 12) + timedelta(days=n) for n in range(4))


@pytest.fixture
def fleet(app, database_url, demo):
    """Put the demo tenant in Berlin; give two chargers of one site a few days of samples
    (one reporting power, one only its register, read at uneven times across midnights)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE tenant SET timezone = 'Europe/Berlin' WHERE slug = 'demo'")
        site_id, one = conn.execute(
            "SELECT site_id, id FROM charger WHERE ocpp_id = 'DEMO-CP-0001'"
        ).fetchone()
        two = conn.execute(
            "SELECT id FROM charger WHERE site_id = %s AND id <> %s ORDER BY id LIMIT 1",
            (site_id, one),
        ).fetchone()[0]
        other_site = conn.execute(
            "SELECT id FROM site WHERE tenant_id = %s AND id <> %s ORDER BY id LIMIT 1",
            (demo["demo"], site_id),
        ).fetchone()[0]
        rows: list[tuple[Any, ...]] = []
        for day in (MON, TUE, WED):
            for k in range(24, 60):  # 06:00-15:00 local, 3 to 9 kW
                rows.append((one, 1, at(k / 4, day), POWER, "W", 3000 + 1000 * (k % 7)))
        register = 0.0
        # Every 50 minutes, 2 kWh a reading, from Monday 20:00 to Wednesday 04:00: pairs
        # across both midnights; then a 3-hour gap (no energy) and one more reading.
        when = at(20, MON)
        while when <= at(4, WED):
            rows.append((two, 1, when, ENERGY, "Wh", register))
            register += 2000
            when += timedelta(minutes=50)
        rows.append((two, 1, when + timedelta(hours=3), ENERGY, "Wh", register + 9000))
        with conn.cursor().copy(
            "COPY meter_value (tenant_id, charger_id, connector_no, at, measurand, unit, value) "
            "FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row((demo["demo"], *row))
    return {"site": site_id, "one": one, "two": two, "other_site": other_site}


def refresh(app) -> int:
    with app.app_context():
        return snapshots.refresh(datetime.now(UTC))


def answers(app, demo, site_id: int | None, start: date = MON, end: date = THU) -> dict:
    """Return the site page's figures and every grouping of the report, over [start, end]."""
    with app.app_context(), tenant_context(demo["demo"]):
        out: dict[str, Any] = {}
        if site_id is not None:
            page = p.peak_load(site_id, start, end, "Europe/Berlin", top=8)
            out["page"] = (
                [(x.start, round(x.kw, 6)) for x in page.peaks],
                [(d, round(kwh, 6)) for d, kwh in page.energy],
            )
        for by in p.GROUPS:
            out[by] = [
                (g.key, g.start, round(g.kw or 0, 6), round(g.kwh, 6), g.chargers)
                for g in p.report(start, end, "Europe/Berlin", by, site_id=site_id, top=8)
            ]
        return out


def raw_answers(app, demo, site_id: int | None, **days: date) -> dict:
    with snapshots.raw():
        return answers(app, demo, site_id, **days)


def stored_quarters(database_url: str, site_id: int) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM site_load WHERE site_id = %s", (site_id,)
        ).fetchone()[0]


def test_the_stored_quarters_give_the_raw_answers(app, demo, fleet, database_url):
    before = raw_answers(app, demo, fleet["site"])
    assert before["page"][0][0] == (at(6.75, TUE), 9.0 + 2.4)  # 9 kW and 2 kWh / 50 min
    refresh(app)
    assert stored_quarters(database_url, fleet["site"]) > 0
    assert answers(app, demo, fleet["site"]) == before
    assert answers(app, demo, None) == raw_answers(app, demo, None)
    # Any split of the period gives the same quarters: a day at a time, the days pairing
    # their registers across the midnights.
    for day in (MON, TUE, WED):
        one_day = raw_answers(app, demo, fleet["site"], start=day, end=day)
        assert answers(app, demo, fleet["site"], start=day, end=day) == one_day
    # 2 kWh every 50 minutes for 32 hours (39 readings), none over the 3-hour gap.
    total = sum(kwh for _, kwh in before["page"][1])
    pumped = sum(3000 + 1000 * (k % 7) for k in range(24, 60)) * 3 / 4 / 1000
    assert total == pytest.approx(pumped + 2 * 38)  # 39 readings


def test_the_pages_read_the_stored_quarters(app, demo, fleet, database_url):
    refresh(app)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE site_load SET w = 99000 WHERE site_id = %s AND q = %s",
            (fleet["site"], at(12, TUE)),
        )
    page = answers(app, demo, fleet["site"])
    assert page["page"][0][0] == (at(12, TUE), 99.0)
    assert page["peak"][0][:3] == (at(12, TUE), at(12, TUE), 99.0)
    # The connectors behind a top quarter hour come from its samples.
    assert page["peak"][1][4].startswith("DEMO-CP-0001 #1: ")


def test_a_late_sample_counts_at_once_and_after_the_next_run(app, demo, fleet, database_url):
    refresh(app)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, unit, "
            "value) VALUES (%s, %s, 2, %s, %s, 'kW', 50)",
            (demo["demo"], fleet["one"], at(22, TUE), POWER),
        )
        marked = conn.execute(
            "SELECT day FROM report_snapshot_dirty WHERE tenant_id = %s", (demo["demo"],)
        ).fetchall()
    assert (TUE,) in marked
    expected = raw_answers(app, demo, fleet["site"])
    assert expected["page"][0][0] == (at(22, TUE), 50.0 + 2.4)
    assert answers(app, demo, fleet["site"]) == expected
    refresh(app)
    assert answers(app, demo, fleet["site"]) == expected
    with psycopg.connect(database_url) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM site_load WHERE site_id = %s AND q = %s AND w > 50000",
                (fleet["site"], at(22, TUE)),
            ).fetchone()[0]
            == 1
        )


def test_a_moved_charger_takes_its_quarters_along(app, demo, fleet, database_url):
    refresh(app)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE charger SET site_id = %s WHERE id = %s", (fleet["other_site"], fleet["two"])
        )
    for site_id in (fleet["site"], fleet["other_site"]):
        expected = raw_answers(app, demo, site_id)
        assert answers(app, demo, site_id) == expected
        refresh(app)
        assert answers(app, demo, site_id) == expected
    moved = answers(app, demo, fleet["other_site"])
    assert moved["page"][0][0][1] == pytest.approx(2.4)


def test_readings_further_apart_than_the_gap_pair_with_nothing(app, demo, fleet, database_url):
    late = at(10, THU)
    with psycopg.connect(database_url) as conn:
        for when, wh in (
            (late, 0),
            (late + timedelta(hours=2), 4000),
            (late + timedelta(hours=4, seconds=1), 8000),
        ):
            conn.execute(
                "INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, "
                "unit, value) VALUES (%s, %s, 1, %s, %s, 'Wh', %s)",
                (demo["demo"], fleet["two"], when, ENERGY, wh),
            )
    thursday = answers(app, demo, fleet["site"], start=THU, end=THU)
    # Two hours apart: 4 kWh over 8 quarters (2 kW); a second over two hours: nothing.
    assert thursday["page"] == (
        [(late + k * timedelta(minutes=15), 2.0) for k in range(8)],
        [(THU, 4.0)],
    )
    assert BERLIN.utcoffset(datetime(2026, 1, 15)) == timedelta(hours=1)
