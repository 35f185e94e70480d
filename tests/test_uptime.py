"""Uptime (issue 5, point 8): availability of chargers and connectors from hand-made event
histories — periods starting mid-state, no events at all, events on the boundaries, faults of
the charger as a whole, offline chargers, many chargers at once, tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cass.services import uptime
from cass.tenancy import tenant_context
from tests.ocpp_support import execute

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
DAY = 86400.0
H = 3600.0


def at(hours: float) -> datetime:
    """Return T0 plus `hours` (negative: before the period)."""
    return T0 + timedelta(hours=hours)


@pytest.fixture
def history(database_url, demo):
    """Return add(charger, hours, kind, status=None, connector=None) writing one event."""

    def add(
        ocpp_id: str, hours: float, kind: str, status: str | None = None, connector=None
    ) -> None:
        execute(
            database_url,
            "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status) "
            "SELECT tenant_id, id, %s, %s, %s, %s FROM charger WHERE ocpp_id = %s",
            (connector, at(hours), kind, status, ocpp_id),
        )

    return add


def measure(app, demo, ocpp_ids, start=T0, end=T1, tenant="demo"):
    with app.app_context(), tenant_context(demo[tenant]):
        return uptime.availability([demo[i] for i in ocpp_ids], start, end)


def figures(a: uptime.Availability) -> tuple[float, float, float]:
    return (round(a.up_seconds, 3), round(a.down_seconds, 3), round(a.unknown_seconds, 3))


def test_no_events_at_all_is_unknown_not_up_or_down(app, demo):
    result = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]]
    assert figures(result.charger) == (0, 0, DAY)
    assert result.charger.percent is None
    assert set(result.connectors) == {1, 2}
    for connector in result.connectors.values():
        assert figures(connector) == (0, 0, DAY) and connector.percent is None


def test_a_period_starting_mid_state_takes_the_state_from_the_last_event_before_it(
    app, demo, history
):
    history("DEMO-CP-0001", -30, "offline")
    history("DEMO-CP-0001", -12, "online")  # the state at T0: online
    history("DEMO-CP-0001", 6, "offline")
    history("DEMO-CP-0001", 8, "online")
    charger = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]].charger
    assert figures(charger) == (22 * H, 2 * H, 0)
    assert charger.percent == pytest.approx(100 * 22 / 24)


def test_time_before_the_first_event_is_unknown(app, demo, history):
    history("DEMO-CP-0001", 10, "online")
    history("DEMO-CP-0001", 30, "offline")  # after the period: ignored
    charger = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]].charger
    assert figures(charger) == (14 * H, 0, 10 * H)
    assert charger.percent == 100


def test_an_event_exactly_at_the_start_wins_and_one_exactly_at_the_end_belongs_to_the_next(
    app, demo, history
):
    history("DEMO-CP-0001", -1, "offline")
    history("DEMO-CP-0001", 0, "online")  # exactly T0
    history("DEMO-CP-0001", 24, "offline")  # exactly T1
    one = demo["DEMO-CP-0001"]
    assert figures(measure(app, demo, ["DEMO-CP-0001"])[one].charger) == (DAY, 0, 0)
    after = measure(app, demo, ["DEMO-CP-0001"], start=T1, end=T1 + timedelta(hours=1))[one]
    assert figures(after.charger) == (0, H, 0)
    before = measure(app, demo, ["DEMO-CP-0001"], start=at(-1), end=T0)[one]
    assert figures(before.charger) == (0, H, 0)


def test_two_events_at_the_same_instant_the_later_one_counts(app, demo, history):
    history("DEMO-CP-0001", -1, "online")
    history("DEMO-CP-0001", 12, "status", "Faulted", 1)
    history("DEMO-CP-0001", 12, "status", "Available", 1)  # same instant, recorded later
    history("DEMO-CP-0001", -1, "status", "Available", 1)
    connector = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]].connectors[1]
    assert figures(connector) == (DAY, 0, 0)


def test_connector_statuses_count_as_available_or_not(app, demo, history):
    history("DEMO-CP-0001", -48, "online")
    history("DEMO-CP-0001", -5, "status", "Available", 1)
    history("DEMO-CP-0001", 3, "status", "Faulted", 1)
    history("DEMO-CP-0001", 5, "status", "Preparing", 1)
    history("DEMO-CP-0001", 6, "status", "Charging", 1)
    history("DEMO-CP-0001", 7, "status", "SuspendedEV", 1)
    history("DEMO-CP-0001", 8, "status", "SuspendedEVSE", 1)
    history("DEMO-CP-0001", 9, "status", "Finishing", 1)
    history("DEMO-CP-0001", 10, "status", "Reserved", 1)
    history("DEMO-CP-0001", 11, "status", "Occupied", 1)  # OCPP 2.0.1: in use
    history("DEMO-CP-0001", 20, "status", "Unavailable", 1)
    result = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]]
    assert figures(result.connectors[1]) == (18 * H, 6 * H, 0)
    assert result.connectors[1].percent == pytest.approx(75)
    # Connector 2 has no status ever: unknown, although the charger is online.
    assert figures(result.connectors[2]) == (0, 0, DAY)
    assert figures(result.charger) == (DAY, 0, 0)


def test_an_offline_charger_takes_its_connectors_down_even_with_no_status_known(app, demo, history):
    history("DEMO-CP-0001", -2, "online")
    history("DEMO-CP-0001", -2, "status", "Available", 1)
    history("DEMO-CP-0001", 10, "offline")  # its last status said Available; that is stale
    history("DEMO-CP-0001", 12, "online")
    result = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]]
    assert figures(result.connectors[1]) == (22 * H, 2 * H, 0)
    # Connector 2's status is never known, but while offline it surely did not work.
    assert figures(result.connectors[2]) == (0, 2 * H, 22 * H)


def test_a_fault_of_the_charger_as_a_whole_takes_every_connector_down(app, demo, history):
    for connector in (1, 2):
        history("DEMO-CP-0001", -3, "status", "Available", connector)
    history("DEMO-CP-0001", -3, "status", "Available", 0)
    history("DEMO-CP-0001", 14, "status", "Faulted", 0)
    history("DEMO-CP-0001", 15, "status", "Available", 0)
    history("DEMO-CP-0001", 16, "status", "Unavailable", 0)
    history("DEMO-CP-0001", 16.5, "status", "Available", 0)
    result = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]]
    for connector in (1, 2):
        assert figures(result.connectors[connector]) == (22.5 * H, 1.5 * H, 0)
    # Presence was never reported: the charger's own figure stays unknown.
    assert figures(result.charger) == (0, 0, DAY)


def test_a_connector_known_only_from_its_events_is_measured_too(app, demo, history):
    history("DEMO-CP-0001", 6, "status", "Available", 3)  # no connector row for 3
    result = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]]
    assert figures(result.connectors[3]) == (18 * H, 0, 6 * H)


def test_other_event_kinds_do_not_count(app, demo, history):
    history("DEMO-CP-0001", -1, "online")
    history("DEMO-CP-0001", 2, "boot", "accepted")
    history("DEMO-CP-0001", 3, "firmware", "Installing")
    history("DEMO-CP-0001", 4, "security", "ResetOrReboot")
    charger = measure(app, demo, ["DEMO-CP-0001"])[demo["DEMO-CP-0001"]].charger
    assert figures(charger) == (DAY, 0, 0)


def test_many_chargers_at_once_match_one_at_a_time_and_skip_foreign_or_missing_ids(
    app, demo, history
):
    history("DEMO-CP-0001", -1, "online")
    history("DEMO-CP-0001", 12, "offline")
    history("DEMO-CP-0002", 6, "offline")
    history("DEMO-CP-0002", 6, "status", "Faulted", 2)
    history("ACME-CP-0001", -1, "online")
    ids = ["DEMO-CP-0001", "DEMO-CP-0002", "DEMO-CP-0003"]
    with app.app_context(), tenant_context(demo["demo"]):
        together = uptime.availability(
            [demo[i] for i in ids] + [demo["ACME-CP-0001"], 999_999], T0, T1
        )
        alone = {demo[i]: uptime.charger_availability(demo[i], T0, T1) for i in ids}
        assert uptime.charger_availability(demo["ACME-CP-0001"], T0, T1) is None
    assert set(together) == {demo[i] for i in ids}
    assert together == alone
    assert figures(together[demo["DEMO-CP-0001"]].charger) == (12 * H, 12 * H, 0)
    second = together[demo["DEMO-CP-0002"]]
    assert figures(second.charger) == (0, 18 * H, 6 * H)
    assert figures(second.connectors[2]) == (0, 18 * H, 6 * H)
    # The other tenant sees its own charger only.
    acme = measure(app, demo, ["ACME-CP-0001", "DEMO-CP-0001"], tenant="acme")
    assert set(acme) == {demo["ACME-CP-0001"]}
    assert figures(acme[demo["ACME-CP-0001"]].charger) == (DAY, 0, 0)


def test_the_future_is_not_counted_and_empty_periods_are_zero(app, demo, history):
    history("DEMO-CP-0001", -1, "online")
    now = datetime.now(UTC)
    charger_id = demo["DEMO-CP-0001"]
    half = measure(
        app, demo, ["DEMO-CP-0001"], start=now - timedelta(hours=1), end=now + timedelta(hours=1)
    )[charger_id].charger
    assert half.down_seconds == 0 and half.unknown_seconds == 0
    assert H - 120 < half.up_seconds <= H + 1
    future = measure(
        app, demo, ["DEMO-CP-0001"], start=now + timedelta(hours=1), end=now + timedelta(hours=2)
    )[charger_id].charger
    assert figures(future) == (0, 0, 0) and future.percent is None
    empty = measure(app, demo, ["DEMO-CP-0001"], start=T0, end=T0)[charger_id]
    assert figures(empty.charger) == (0, 0, 0)
    assert all(figures(c) == (0, 0, 0) for c in empty.connectors.values())


def test_periods_must_be_aware_and_ordered(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        with pytest.raises(ValueError):
            uptime.availability([demo["DEMO-CP-0001"]], T0.replace(tzinfo=None), T1)
        with pytest.raises(ValueError):
            uptime.availability([demo["DEMO-CP-0001"]], T1, T0)
        assert uptime.availability([], T0, T1) == {}


def test_presence_is_the_chargers_own_figure_of_availability(app, demo, history):
    # Offline across the start, then gaps in between (online, offline, online again).
    history("DEMO-CP-0001", -30, "online")
    history("DEMO-CP-0001", -5, "offline")
    history("DEMO-CP-0001", 3, "online")
    history("DEMO-CP-0001", 10, "offline")
    history("DEMO-CP-0001", 14, "online")
    history("DEMO-CP-0001", 2, "status", "Faulted", 1)  # a connector's: not presence
    # Events at exactly the start (the later one wins), and two at the same instant later.
    history("DEMO-CP-0002", -2, "online")
    history("DEMO-CP-0002", 0, "online")
    history("DEMO-CP-0002", 0, "offline")
    history("DEMO-CP-0002", 6, "online")
    history("DEMO-CP-0002", 6, "offline")
    history("DEMO-CP-0002", 0, "status", "Available", 0)
    # Nothing known before its first event, mid-period.
    history("DEMO-CP-0003", 9, "offline")
    history("DEMO-CP-0003", 20, "online")
    # DEMO-CP-0004 has no events at all; ACME's charger and 999_999 are not the tenant's.
    names = ["DEMO-CP-0001", "DEMO-CP-0002", "DEMO-CP-0003", "DEMO-CP-0004"]
    ids = [demo[n] for n in names] + [demo["ACME-CP-0001"], 999_999]
    now = datetime.now(UTC)
    periods = [
        (T0, T1),
        (at(-10), at(5)),
        (at(-48), at(-24)),  # before anything but DEMO-CP-0001's first event
        (T0, T0),
        (at(6), at(6)),
        (now - timedelta(hours=1), now + timedelta(hours=1)),  # clipped to now
    ]
    with app.app_context(), tenant_context(demo["demo"]):
        for start, end in periods:
            whole = uptime.availability(ids, start, end)
            own = uptime.presence(ids, start, end)
            assert own == {i: a.charger for i, a in whole.items()}, (start, end)
            assert set(own) == {demo[n] for n in names}
        day = uptime.presence(ids, T0, T1)
        assert uptime.presence([], T0, T1) == {}
        with pytest.raises(ValueError):
            uptime.presence(ids, T1, T0)
        with pytest.raises(ValueError):
            uptime.presence(ids, T0.replace(tzinfo=None), T1)
    assert figures(day[demo["DEMO-CP-0001"]]) == (17 * H, 7 * H, 0)
    assert figures(day[demo["DEMO-CP-0002"]]) == (0, DAY, 0)
    assert figures(day[demo["DEMO-CP-0003"]]) == (4 * H, 11 * H, 9 * H)
    assert figures(day[demo["DEMO-CP-0004"]]) == (0, 0, DAY)
