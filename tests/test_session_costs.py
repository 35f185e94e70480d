"""Session costs (issue 5, point 6): a real bridge prices each session when it stops, with the
tariff of the charger's site in force when the session started — OCPP 1.6 StopTransaction and
2.0.1 TransactionEvent Ended alike."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from ocpp.v16 import call

from tests.ocpp_support import Charger16, execute, open_socket, query, running_bridge, serving
from tests.test_bridge_201 import connect, energy, hang_up, token, tx_event


def site_of(database_url: str, charger_id: int) -> int:
    return query(database_url, "SELECT site_id FROM charger WHERE id = %s", (charger_id,))[0][0]


def add_tariff(database_url, site_id, name, currency, kwh, minute, session, start, end=None):
    execute(
        database_url,
        "INSERT INTO tariff (tenant_id, site_id, name, currency, per_kwh, per_minute, "
        "per_session, valid_from, valid_to) "
        "SELECT tenant_id, id, %s, %s, %s, %s, %s, %s, %s FROM site WHERE id = %s",
        (name, currency, kwh, minute, session, start, end, site_id),
    )
    return query(database_url, "SELECT max(id) FROM tariff")[0][0]


def priced(database_url: str, session_id: int) -> tuple:
    return query(
        database_url,
        "SELECT energy_wh, tariff_id, cost, currency FROM charging_session WHERE id = %s",
        (session_id,),
    )[0]


def test_ocpp16_stop_prices_the_session_with_the_tariff_in_force_at_its_start(database_url, demo):
    site = site_of(database_url, demo["DEMO-CP-0002"])
    early = add_tariff(
        database_url,
        site,
        "Autumn",
        "EUR",
        "0.30",
        "0.05",
        "1.00",
        "2026-11-01T00:00:00Z",
        "2026-11-28T08:30:00Z",
    )
    late = add_tariff(
        database_url, site, "Winter", "GBP", "0.40", "0", "0.50", "2026-11-28T08:30:00Z"
    )
    # Another site's tariff, in force throughout, must not apply.
    other_site = query(
        database_url,
        "SELECT id FROM site WHERE tenant_id = %s AND id <> %s ORDER BY id LIMIT 1",
        (demo["demo"], site),
    )[0][0]
    add_tariff(database_url, other_site, "Elsewhere", "USD", "9", "9", "9", "2026-01-01T00:00:00Z")

    async def scenario(url: str) -> dict:
        ws = await open_socket(url, "DEMO-CP-0002")
        cp = Charger16("DEMO-CP-0002", ws)
        task = await serving(cp)
        out = {}
        # Started under "Autumn", stopped under "Winter": Autumn prices it.
        first = await cp.call(
            call.StartTransaction(1, "DEMO-TAG-0001", 5000, "2026-11-28T08:00:00Z")
        )
        # Started under "Winter".
        second = await cp.call(
            call.StartTransaction(2, "DEMO-TAG-0002", 100, "2026-11-28T08:45:00Z")
        )
        out["first"], out["second"] = first.transaction_id, second.transaction_id
        stop = call.StopTransaction(7500, "2026-11-28T09:00:00Z", first.transaction_id)
        await cp.call(stop)
        await cp.call(call.StopTransaction(2100, "2026-11-28T09:15:30Z", second.transaction_id))
        # A tariff changed afterwards, then the stop resent: nothing is repriced.
        await asyncio.to_thread(
            execute, database_url, "UPDATE tariff SET per_session = 100 WHERE id = %s", (early,)
        )
        await cp.call(stop)
        task.cancel()
        await ws.close()
        return out

    with running_bridge(database_url) as bridge:
        out = asyncio.run(scenario(bridge.url))
    # 1.00 + 0.30 * 2.5 kWh + 0.05 * 60 min
    assert priced(database_url, out["first"]) == (2500, early, Decimal("4.7500"), "EUR")
    # 0.50 + 0.40 * 2 kWh (+ 0 * 30.5 min)
    assert priced(database_url, out["second"]) == (2000, late, Decimal("1.3000"), "GBP")


def test_ocpp16_session_without_a_tariff_has_no_cost(database_url, demo):
    async def scenario(url: str) -> int:
        ws = await open_socket(url, "DEMO-CP-0004")
        cp = Charger16("DEMO-CP-0004", ws)
        task = await serving(cp)
        start = await cp.call(call.StartTransaction(1, "DEMO-TAG-0001", 0, "2026-11-28T08:00:00Z"))
        await cp.call(call.StopTransaction(1000, "2026-11-28T08:10:00Z", start.transaction_id))
        task.cancel()
        await ws.close()
        return start.transaction_id

    with running_bridge(database_url) as bridge:
        session = asyncio.run(scenario(bridge.url))
    assert priced(database_url, session) == (1000, None, None, None)


def test_ocpp201_ended_prices_the_session_and_unknown_energy_leaves_the_cost_unknown(
    database_url, demo
):
    site = site_of(database_url, demo["DEMO-CP-0003"])
    tariff = add_tariff(
        database_url,
        site,
        "Per kWh and minute",
        "EUR",
        "0.25",
        "0.10",
        "0",
        "2026-11-01T00:00:00Z",
    )
    t0, t1 = "2026-11-28T10:00:00Z", "2026-11-28T10:30:00Z"

    async def scenario(url: str) -> None:
        cp, ws, task = await connect(url, "DEMO-CP-0003")
        begin = {"timestamp": t0, "sampled_value": [energy(1000, context="Transaction.Begin")]}
        end = {"timestamp": t1, "sampled_value": [energy(4.0, "kWh", context="Transaction.End")]}
        await cp.call(
            tx_event(
                "Started",
                "tx-cost",
                t0,
                0,
                "Authorized",
                id_token=token("DEMO-TAG-0001"),
                evse={"id": 1, "connector_id": 1},
                meter_value=[begin],
            )
        )
        await cp.call(
            tx_event(
                "Ended",
                "tx-cost",
                t1,
                1,
                "EVDeparted",
                info={"stopped_reason": "EVDisconnected"},
                meter_value=[end],
            )
        )
        # Ended without any reading: the energy, and so a per-kWh cost, is unknown.
        await cp.call(
            tx_event(
                "Started", "tx-blind", t0, 0, "CablePluggedIn", evse={"id": 2, "connector_id": 1}
            )
        )
        await cp.call(tx_event("Ended", "tx-blind", t1, 1, "EVDeparted"))
        await hang_up(ws, task)

    with running_bridge(database_url) as bridge:
        asyncio.run(scenario(bridge.url))
    rows = dict(
        (ref, rest)
        for ref, *rest in query(
            database_url,
            "SELECT transaction_ref, energy_wh, tariff_id, cost, currency FROM charging_session "
            "WHERE charger_id = %s",
            (demo["DEMO-CP-0003"],),
        )
    )
    # 0.25 * 3 kWh + 0.10 * 30 min
    assert rows["tx-cost"] == [3000, tariff, Decimal("3.7500"), "EUR"]
    assert rows["tx-blind"] == [None, tariff, None, "EUR"]
