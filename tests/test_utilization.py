"""Utilization (issue 10, points 1 and 6): connector time per state, sessions and the weekday and
hour heat map, against hand-computed histories in Europe/Berlin — status changes written as the
bridge writes them, a session crossing local midnight, the 23- and 25-hour days of DST, the state
at the start taken from before the period, an offline gap, levels, and tenant isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from cass.services import utilization as u
from cass.tenancy import tenant_context
from ocpp_bridge.records import _STATUS_SQL, LIVE_CHANNEL
from tests.ocpp_support import execute

BERLIN = ZoneInfo("Europe/Berlin")
ZONE = "Europe/Berlin"
H = 3600.0
WED = date(2026, 1, 14)  # a Wednesday in winter (CET, UTC+1)


def local(day: date, hours: float) -> datetime:
    """Return the instant `hours` after local midnight of `day` in Berlin (wall-clock hours
    before any DST change that day)."""
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(UTC) + timedelta(
        hours=hours
    )


@pytest.fixture
def status(database_url, demo):
    """Return status(ocpp_id, connector, at, status) writing it as the bridge's
    StatusNotification does (an event only when it changed; the connector row upserted)."""

    def write(ocpp_id: str, connector: int, at: datetime, value: str) -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(
                _STATUS_SQL,
                {
                    "tenant_id": demo["demo"],
                    "charger_id": demo[ocpp_id],
                    "no": connector,
                    "status": value,
                    "error_code": "NoError",
                    "info": None,
                    "vendor_error_code": None,
                    "at": at,
                    "channel": LIVE_CHANNEL,
                    "live": "{}",
                },
            )

    return write


@pytest.fixture
def presence(database_url, demo):
    """Return presence(ocpp_id, at, kind) writing an online/offline event."""

    def write(ocpp_id: str, at: datetime, kind: str) -> None:
        execute(
            database_url,
            "INSERT INTO charger_event (tenant_id, charger_id, at, kind) "
            "SELECT tenant_id, id, %s, %s FROM charger WHERE ocpp_id = %s",
            (at, kind, ocpp_id),
        )

    return write


@pytest.fixture
def session(database_url, demo):
    """Return session(ocpp_id, connector, started, stopped, wh) writing a charging session."""

    def write(ocpp_id: str, connector: int, started, stopped, wh) -> None:
        execute(
            database_url,
            "INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at, "
            "stopped_at, energy_wh) SELECT tenant_id, id, %s, %s, %s, %s FROM charger "
            "WHERE ocpp_id = %s",
            (connector, started, stopped, wh, ocpp_id),
        )

    return write


def measure(app, demo, start, end=None, level="charger", tenant="demo", **scope):
    scope.setdefault("charger_ids", [demo["DEMO-CP-0001"]])
    with app.app_context(), tenant_context(demo[tenant]):
        return u.utilization(start, end or start, ZONE, level, **scope)


def seconds(usage: u.Usage) -> dict[str, float]:
    return {s: round(v, 3) for s, v in usage.seconds.items() if v}


def test_a_day_of_status_changes_splits_connector_time_and_fills_the_heat_map(
    app, demo, status, presence, session
):
    presence("DEMO-CP-0001", local(WED, -48), "online")
    status("DEMO-CP-0001", 1, local(WED, -2), "Available")  # the state at the start
    status("DEMO-CP-0001", 1, local(WED, 8), "Preparing")
    status("DEMO-CP-0001", 1, local(WED, 8.25), "Charging")
    status("DEMO-CP-0001", 1, local(WED, 9), "Charging")  # a repeat: no event, no change
    status("DEMO-CP-0001", 1, local(WED, 10.25), "SuspendedEV")
    status("DEMO-CP-0001", 1, local(WED, 10.75), "Finishing")
    status("DEMO-CP-0001", 1, local(WED, 11), "Available")
    status("DEMO-CP-0001", 1, local(WED, 20), "Faulted")
    status("DEMO-CP-0001", 1, local(WED, 22), "Available")
    status("DEMO-CP-0001", 1, local(WED, 25), "Charging")  # tomorrow: not counted
    session("DEMO-CP-0001", 1, local(WED, 8.25), local(WED, 10.75), 15000)
    session("DEMO-CP-0001", 2, local(WED, -3), local(WED, -1), 9000)  # before: not counted

    result = measure(app, demo, WED, level="connector")
    one = result.groups[(demo["DEMO-CP-0001"], 1)]
    assert seconds(one) == {"charging": 2 * H, "occupied": 1 * H, "available": 19 * H,
                            "other": 2 * H}  # fmt: skip
    assert one.share("charging") == pytest.approx(2 / 24)
    assert (one.sessions, one.sessions_per_day, one.mean_kwh, one.mean_hours) == (1, 1, 15, 2.5)
    # Connector 2 never reported a status: unknown all day, though its charger was online.
    assert seconds(result.groups[(demo["DEMO-CP-0001"], 2)]) == {"unknown": 24 * H}

    charger = measure(app, demo, WED).groups[demo["DEMO-CP-0001"]]
    assert charger.connectors == 2 and charger.period_seconds == 24 * H
    assert charger.share("charging") == pytest.approx(2 / 48)
    assert charger.share("unknown") == pytest.approx(0.5)

    heat = result.heat
    wednesday = heat[2]
    assert wednesday[8] == pytest.approx(2700 / 7200)  # 08:15-09:00 of two connector-hours
    assert wednesday[9] == pytest.approx(0.5)
    assert wednesday[10] == pytest.approx(900 / 7200)
    assert wednesday[0] == 0 and wednesday[23] == 0
    assert all(cell is None for day in heat[:2] + heat[3:] for cell in day)


def test_a_session_crossing_local_midnight_counts_in_both_days(
    app, demo, status, presence, session
):
    presence("DEMO-CP-0001", local(WED, -48), "online")
    status("DEMO-CP-0001", 1, local(WED, -2), "Available")
    status("DEMO-CP-0001", 1, local(WED, 22), "Charging")
    status("DEMO-CP-0001", 1, local(WED, 26), "Available")  # 02:00 on Thursday
    session("DEMO-CP-0001", 1, local(WED, 22), local(WED, 26), 30000)

    wednesday = measure(app, demo, WED, level="connector").groups[(demo["DEMO-CP-0001"], 1)]
    assert seconds(wednesday) == {"charging": 2 * H, "available": 22 * H}
    assert wednesday.sessions == 1 and wednesday.mean_hours == 4 and wednesday.mean_kwh == 30

    thursday = WED + timedelta(days=1)
    result = measure(app, demo, thursday, level="connector")
    # The state at Thursday's start is the Charging reported on Wednesday.
    assert seconds(result.groups[(demo["DEMO-CP-0001"], 1)]) == {
        "charging": 2 * H,
        "available": 22 * H,
    }
    assert result.total.sessions == 0  # it started on Wednesday
    assert result.heat[3][0] == pytest.approx(0.5) and result.heat[3][1] == pytest.approx(0.5)
    assert result.heat[3][2] == 0

    both = measure(app, demo, WED, thursday, level="connector")
    assert both.groups[(demo["DEMO-CP-0001"], 1)].seconds["charging"] == 4 * H
    assert both.total.days == 2 and both.total.sessions_per_day == 0.5


def test_the_23_hour_day_of_spring_has_no_hour_2(app, demo, status, presence):
    day = date(2026, 3, 29)  # Sunday: 02:00 CET becomes 03:00 CEST
    presence("DEMO-CP-0001", local(day, -48), "online")
    status("DEMO-CP-0001", 1, local(day, -5), "Charging")
    status("DEMO-CP-0001", 2, local(day, -5), "Available")
    result = measure(app, demo, day, level="connector")
    charging = result.groups[(demo["DEMO-CP-0001"], 1)]
    assert charging.period_seconds == 23 * H
    assert seconds(charging) == {"charging": 23 * H}
    assert result.total.share("charging") == pytest.approx(0.5)
    sunday = result.heat[6]
    assert sunday[2] is None  # no such local hour that day
    assert sunday[1] == pytest.approx(0.5) and sunday[3] == pytest.approx(0.5)
    assert all(sunday[h] == pytest.approx(0.5) for h in range(24) if h != 2)


def test_the_25_hour_day_of_autumn_counts_hour_2_twice(app, demo, status, presence):
    day = date(2026, 10, 25)  # Sunday: 03:00 CEST becomes 02:00 CET
    start = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 01:30 CEST
    presence("DEMO-CP-0001", local(day, -48), "online")
    status("DEMO-CP-0001", 1, local(day, -12), "Available")
    status("DEMO-CP-0001", 2, local(day, -12), "Available")
    status("DEMO-CP-0001", 1, start, "Charging")
    status("DEMO-CP-0001", 1, start + timedelta(hours=3), "Available")  # 03:30 CET
    result = measure(app, demo, day, level="connector")
    one = result.groups[(demo["DEMO-CP-0001"], 1)]
    assert one.period_seconds == 25 * H
    assert seconds(one) == {"charging": 3 * H, "available": 22 * H}
    assert result.total.share("charging") == pytest.approx(3 / 50)
    sunday = result.heat[6]
    assert sunday[1] == pytest.approx(1800 / 7200)
    # Both 02:00 hours: two hours of charging over two connectors' two hours.
    assert sunday[2] == pytest.approx(7200 / 14400)
    assert sunday[3] == pytest.approx(1800 / 7200)
    assert sunday[4] == 0


def test_an_offline_gap_is_offline_whatever_the_last_status_said(app, demo, status, presence):
    presence("DEMO-CP-0001", local(WED, -48), "online")
    status("DEMO-CP-0001", 1, local(WED, -2), "Available")
    presence("DEMO-CP-0001", local(WED, 10), "offline")
    presence("DEMO-CP-0001", local(WED, 13), "online")
    result = measure(app, demo, WED, level="connector")
    assert seconds(result.groups[(demo["DEMO-CP-0001"], 1)]) == {
        "available": 21 * H,
        "offline": 3 * H,
    }
    # Connector 2's status is never known, but while offline it is offline.
    assert seconds(result.groups[(demo["DEMO-CP-0001"], 2)]) == {
        "offline": 3 * H,
        "unknown": 21 * H,
    }


def test_sites_sum_their_chargers_and_the_future_is_not_counted(app, demo, status, presence):
    presence("DEMO-CP-0001", local(WED, -48), "online")
    status("DEMO-CP-0001", 1, local(WED, -2), "Charging")
    with app.app_context(), tenant_context(demo["demo"]):
        from cass.extensions import db
        from cass.models import Charger

        site = db.session.get(Charger, demo["DEMO-CP-0001"]).site_id
        at_site = [c.id for c in db.session.query(Charger).filter_by(site_id=site)]
    result = measure(app, demo, WED, level="site", charger_ids=None, site_id=site)
    assert list(result.groups) == [site] and result.sites[site] == site
    usage = result.groups[site]
    assert usage.connectors == 2 * len(at_site)
    assert usage.seconds["charging"] == 24 * H
    assert usage.share("charging") == pytest.approx(1 / usage.connectors)
    assert result.total == usage

    today = datetime.now(BERLIN).date()
    upcoming = measure(app, demo, today + timedelta(days=1), today + timedelta(days=3))
    assert upcoming.total.period_seconds == 0 and upcoming.total.days == 0
    assert upcoming.total.share("charging") is None


def test_another_tenant_sees_nothing_of_this_one(app, demo, status, presence, session):
    presence("DEMO-CP-0001", local(WED, -48), "online")
    status("DEMO-CP-0001", 1, local(WED, -2), "Charging")
    session("DEMO-CP-0001", 1, local(WED, 1), local(WED, 2), 1000)
    demo_site = measure(app, demo, WED, level="site", charger_ids=None).groups
    assert demo_site and sum(g.sessions for g in demo_site.values()) == 1

    acme = measure(app, demo, WED, level="connector", tenant="acme")
    assert acme.groups == {} and acme.total.connectors == 0
    everything = measure(app, demo, WED, level="charger", tenant="acme", charger_ids=None)
    assert all(key not in everything.groups for key in (demo["DEMO-CP-0001"],))
    assert everything.total.sessions == 0 and everything.total.seconds["charging"] == 0
    assert len(everything.groups) == 4  # Acme's own chargers


def test_bad_arguments_are_refused(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        with pytest.raises(ValueError):
            u.utilization(WED, WED, ZONE, "model")
        with pytest.raises(ValueError):
            u.utilization(WED, WED - timedelta(days=1), ZONE)
