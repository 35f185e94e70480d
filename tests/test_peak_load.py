"""Peak load (issue 10, points 2 and 6): a site's load per quarter hour from power samples (W,
kW, per phase) and, for a charger that reports only its energy register, from the register's
deltas; its top peaks; energy per day, week and month across a 25-hour DST day; tenants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from cass.services import peak_load as p
from cass.tenancy import tenant_context

BERLIN = ZoneInfo("Europe/Berlin")
WED = date(2026, 1, 14)


def at(hour: float, day: date = WED) -> datetime:
    """Return local `hour` of `day` in Berlin (no DST change that day)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC)
    return midnight + timedelta(hours=hour)


@pytest.fixture
def site(database_url, demo):
    """Return (site id, the OCPP ids of two chargers there)."""
    with psycopg.connect(database_url) as conn:
        site_id = conn.execute(
            "SELECT site_id FROM charger WHERE ocpp_id = 'DEMO-CP-0001'"
        ).fetchone()[0]
        other = conn.execute(
            "SELECT ocpp_id FROM charger WHERE site_id = %s AND ocpp_id <> 'DEMO-CP-0001' "
            "ORDER BY ocpp_id LIMIT 1",
            (site_id,),
        ).fetchone()[0]
    return site_id, "DEMO-CP-0001", other


@pytest.fixture
def meter(database_url, demo):
    """Return meter(ocpp_id, connector, at, measurand, value, unit, phase=None)."""

    def write(ocpp_id, connector, when, measurand, value, unit, phase=None) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, "
                "phase, unit, context, value) SELECT tenant_id, id, %s, %s, %s, %s, %s, "
                "'Sample.Periodic', %s FROM charger WHERE ocpp_id = %s",
                (connector, when, measurand, phase, unit, value, ocpp_id),
            )

    return write


POWER, ENERGY = "Power.Active.Import", "Energy.Active.Import.Register"


def measure(app, demo, site_id, start, end=None, tenant="demo", **options):
    with app.app_context(), tenant_context(demo[tenant]):
        return p.peak_load(site_id, start, end or start, "Europe/Berlin", **options)


def test_power_samples_and_an_energy_only_charger_add_up_per_quarter_hour(app, demo, site, meter):
    site_id, one, energy_only = site
    meter(one, 1, at(10), POWER, 7000, "W")
    meter(one, 1, at(10 + 5 / 60), POWER, 11000, "W")  # mean 9 kW in 10:00-10:15
    meter(one, 1, at(10.25), POWER, 11, "kW")
    for phase in ("L1", "L2", "L3"):  # per phase: 9 kW together
        meter(one, 2, at(10.25), POWER, 3000, "W", phase)
    meter(one, 1, at(10.25), "Current.Import", 16, "A")  # another measurand: ignored
    # The other charger reports only its register (Wh, one reading in kWh).
    meter(energy_only, 1, at(9.75), ENERGY, 1000, "Wh")
    meter(energy_only, 1, at(10), ENERGY, 1000, "Wh")
    meter(energy_only, 1, at(10.25), ENERGY, 4, "kWh")  # 3 kWh in a quarter: 12 kW
    meter(energy_only, 1, at(10.5), ENERGY, 5000, "Wh")  # 4 kW
    meter(energy_only, 1, at(11), ENERGY, 6000, "Wh")  # 1 kWh over two quarters: 2 kW each
    meter(energy_only, 1, at(11.25), ENERGY, 10, "Wh")  # a meter reset: no energy

    result = measure(app, demo, site_id, WED, top=3)
    assert [(x.start, round(x.kw, 3)) for x in result.peaks] == [
        (at(10.25), 24.0),  # 11 + 9 + 4
        (at(10), 21.0),  # 9 + 12
        (at(10.5), 2.0),
    ]
    assert result.peak_kw == 24.0
    # Energy: 2.25 + 3 | 5 + 1 | 0.5 | 0.5 kWh (power x 0.25 h where no register).
    assert result.energy == [(WED, pytest.approx(12.25))]


def steady_4_kw_over_the_25_hour_day(database_url: str, ocpp_id: str) -> None:
    """Write 4 kW on connector 1 of `ocpp_id` every quarter hour from 23:00 CEST on Saturday
    24 October 2026 to 00:45 CET on the 26th (Sunday has 25 hours in Berlin)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, unit, "
            "value) SELECT c.tenant_id, c.id, 1, t, %s, 'W', 4000 FROM charger c, "
            "generate_series(%s::timestamptz, %s::timestamptz, interval '15 minutes') t "
            "WHERE c.ocpp_id = %s",
            (
                POWER,
                datetime(2026, 10, 24, 21, tzinfo=UTC),
                datetime(2026, 10, 25, 23, 45, tzinfo=UTC),
                ocpp_id,
            ),
        )


def test_energy_per_day_week_and_month_across_the_25_hour_day(app, demo, site, database_url):
    site_id, one, _ = site
    steady_4_kw_over_the_25_hour_day(database_url, one)
    sat, sun, mon = date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)
    days = measure(app, demo, site_id, sat, mon)
    assert days.energy == [
        (sat, pytest.approx(4.0)),
        (sun, pytest.approx(100.0)),  # 25 hours of 4 kW
        (mon, pytest.approx(4.0)),
    ]
    assert days.peak_kw == 4.0
    weeks = measure(app, demo, site_id, sat, mon, unit="week")
    assert weeks.energy == [(date(2026, 10, 19), pytest.approx(104.0)), (mon, pytest.approx(4))]
    months = measure(app, demo, site_id, sat, mon, unit="month")
    assert months.energy == [(date(2026, 10, 1), pytest.approx(108.0))]


def test_no_data_and_another_tenant(app, demo, site, meter):
    site_id, one, _ = site
    meter(one, 1, at(10), POWER, 7000, "W")
    assert measure(app, demo, site_id, WED).peak_kw == 7.0
    empty = measure(app, demo, site_id, WED, tenant="acme")
    assert empty.peaks == [] and empty.energy == [] and empty.peak_kw is None
    assert measure(app, demo, site_id, WED + timedelta(days=1)).peaks == []
    with app.app_context(), tenant_context(demo["demo"]), pytest.raises(ValueError):
        p.peak_load(site_id, WED, WED, "UTC", unit="year")
