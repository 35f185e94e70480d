"""The OCPP message log as a file (issue 10, point 4): CSV and JSON Lines of a charger's frames
with the viewer's filters, and of a whole site's over a bounded range — round trips of awkward
frames, the same rows as the viewer, streamed, each tenant and vendor their own chargers only,
bad filters a 422."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import select

from cass.csv_download import CHUNK_BYTES, literal_select
from cass.extensions import db
from cass.models import Charger, OcppMessage, Site, Ticket
from cass.services import message_log
from cass.tenancy import system_context, tenant_context
from ocpp_bridge.store import LOG_COLUMNS
from tests.conftest import as_user
from tests.test_csv_export import copy_backends, guarded, set_zone

CP = "DEMO-CP-0001"
HX = {"HX-Request": "true"}
MESSAGE_RE = re.compile(r'<tr id="message-(\d+)"')
NOW = datetime.now(UTC).replace(microsecond=0)
HEADER = list(message_log.EXPORT_HEADER)
AWKWARD_PAYLOADS = [
    {"vendorId": "ABB", "data": 'a "quoted", comma, and\nnew line\r\n'},
    {"text": "Zürich — 東京 🚗 ½", "esc": "back\\slash \\N \\."},
    ['=HYPERLINK("http://evil.test","x")', "+44 7700", "-2+3", "@SUM(A1)", "\tTab"],
    "=1+1",  # a bare JSON string that looks like a formula
    -5,
    None,  # a JSON null
    {"huge": "x" * 60_000},
]


def copy_frames(database_url: str, ocpp_id: str, frames: list[tuple]) -> None:
    """Write frames (at, direction, type, unique id, action, payload, code, text) as the bridge
    does: one COPY of ocpp_message's log columns, the payload as JSON text."""
    with psycopg.connect(database_url) as conn:
        tenant, charger = conn.execute(
            "SELECT tenant_id, id FROM charger WHERE ocpp_id = %s", (ocpp_id,)
        ).fetchone()
        conn.execute("SELECT cass_ocpp_message_partitions(30, 3)")
        statement = f"COPY ocpp_message ({', '.join(LOG_COLUMNS)}) FROM STDIN"
        with conn.cursor().copy(statement) as copy:
            for at, direction, kind, unique, action, payload, code, text in frames:
                row = (at, tenant, charger, direction, kind, unique, action, json.dumps(payload))
                copy.write_row((*row, code, text))


def awkward_frames() -> list[tuple]:
    base = NOW - timedelta(hours=1)
    frames = [
        (base + timedelta(seconds=i), "in", 2, f"u{i}", "DataTransfer", p, None, None)
        for i, p in enumerate(AWKWARD_PAYLOADS)
    ]
    frames.append(
        (base + timedelta(minutes=5), "out", 4, "-1", None, {}, "FormationViolation", "=cmd|x")
    )
    return frames


def unguarded(cell: str) -> str:
    """Undo the formula guard, as `cass chargers import` does."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def jsonl_rows(body: bytes) -> list[dict]:
    text = body.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def manager(app, demo):
    return as_user(app, "manager@demo.test")


def charger_site(app, ocpp_id: str) -> tuple[int, int]:
    """Return (site id, tenant id) of a charger."""
    with app.app_context(), system_context():
        found = db.session.execute(
            select(Charger.site_id, Charger.tenant_id).where(Charger.ocpp_id == ocpp_id)
        )
        return tuple(found.one())


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_csv_round_trips_awkward_frames(manager, database_url, demo, zone):
    set_zone(database_url, demo["demo"], zone)
    frames = awkward_frames()
    copy_frames(database_url, CP, frames)
    response = manager.get(f"/chargers/{CP}/messages.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="messages-DEMO-CP-0001-all-[\d-]+\.csv"', disposition
    )
    rows = csv_rows(response.get_data())
    assert rows[0] == HEADER and len(rows) == 1 + len(frames)
    for row, (at, direction, kind, unique, action, payload, code, text) in zip(
        rows[1:], frames, strict=True
    ):
        record = dict(zip(HEADER, row, strict=True))
        assert record["time"] == at.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")
        assert record["charger"] == CP and record["direction"] == direction
        assert record["message_type"] == {2: "CALL", 3: "RESULT", 4: "ERROR"}[kind]
        assert record["unique_id"] == guarded(unique)  # "-1" is text: the formula guard's
        assert record["action"] == (action or "")
        assert record["error_code"] == (code or "")
        assert record["error_description"] == (guarded(text) if text else "")
        # JSON text; an object or array never starts like a formula, a bare -5 does (guarded).
        assert record["payload"] == guarded(json.dumps(payload) if payload == -5 else "") or (
            payload != -5
        )
        assert json.loads(unguarded(record["payload"])) == payload


def test_jsonl_round_trips_awkward_frames(manager, database_url, demo):
    set_zone(database_url, demo["demo"], "Europe/Berlin")
    frames = awkward_frames()
    copy_frames(database_url, CP, frames)
    response = manager.get(f"/chargers/{CP}/messages.jsonl")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    assert response.headers["Content-Disposition"].endswith('.jsonl"')
    lines = jsonl_rows(response.get_data())
    assert len(lines) == len(frames)
    for line, (at, direction, kind, unique, action, payload, code, text) in zip(
        lines, frames, strict=True
    ):
        assert list(line) == HEADER
        assert line["time"] == at.astimezone(ZoneInfo("Europe/Berlin")).isoformat("T", "seconds")
        assert (line["charger"], line["direction"], line["unique_id"]) == (CP, direction, unique)
        assert line["message_type"] == {2: "CALL", 3: "RESULT", 4: "ERROR"}[kind]
        assert (line["action"], line["error_code"], line["error_description"]) == (
            action,
            code,
            text,
        )
        assert line["payload"] == payload  # a JSON value, not a string holding JSON


def test_csv_and_jsonl_hold_the_same_frames(manager, database_url, demo):
    copy_frames(database_url, CP, awkward_frames())
    rows = csv_rows(manager.get(f"/chargers/{CP}/messages.csv").get_data())[1:]
    lines = jsonl_rows(manager.get(f"/chargers/{CP}/messages.jsonl").get_data())
    assert [json.loads(unguarded(r[-1])) for r in rows] == [line["payload"] for line in lines]
    assert [r[0] for r in rows] == [line["time"] for line in lines]


def test_bom_for_excel(manager, database_url, demo):
    copy_frames(database_url, CP, awkward_frames()[:1])
    assert manager.get(f"/chargers/{CP}/messages.csv?bom=1").get_data().startswith(b"\xef\xbb\xbf")


# --- the viewer's filters -------------------------------------------------------------------


def viewer_frames(database_url: str) -> list[tuple]:
    base = NOW - timedelta(minutes=30)
    frames = [
        (base, "in", 2, "m0", "BootNotification", {"vendor": "ABB"}, None, None),
        (base + timedelta(minutes=1), "out", 3, "m1", "BootNotification", {}, None, None),
        (base + timedelta(minutes=10), "in", 2, "m2", "Heartbeat", {}, None, None),
        (base + timedelta(minutes=20), "in", 2, "m3", "StatusNotification", {}, None, None),
        (base + timedelta(minutes=21), "out", 3, "m4", "StatusNotification", {}, None, None),
    ]
    copy_frames(database_url, CP, frames)
    return frames


@pytest.mark.parametrize(
    "params",
    [
        "",
        "msg_action=BootNotification",
        "msg_action=heartbeat",  # any case, as the viewer
        "msg_dir=out",
        "msg_dir=in&msg_action=StatusNotification",
        "msg_from={from}",
        "msg_from={from}&msg_to={to}",
        "msg_to={to}",
        "msg_from={day}",  # a date alone, as the viewer reads it
    ],
)
def test_the_filters_give_the_viewers_rows(manager, app, database_url, demo, params):
    viewer_frames(database_url)
    since = (NOW - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M")
    until = (NOW - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
    day = NOW.date().isoformat()
    params = params.format(**{"from": since, "to": until, "day": day})
    html = manager.get(f"/chargers/{CP}?part=messages&{params}", headers=HX).get_data(as_text=True)
    with app.app_context(), tenant_context(demo["demo"]):
        ids = [int(i) for i in MESSAGE_RE.findall(html)]
        by_id = dict(db.session.execute(select(OcppMessage.id, OcppMessage.message_id)).all())
    shown = [by_id[i] for i in reversed(ids)]  # the viewer: newest first
    assert [
        r[4] for r in csv_rows(manager.get(f"/chargers/{CP}/messages.csv?{params}").data)[1:]
    ] == (shown)
    lines = jsonl_rows(manager.get(f"/chargers/{CP}/messages.jsonl?{params}").data)
    assert [line["unique_id"] for line in lines] == shown


def test_the_page_links_carry_the_filters(manager, database_url, demo):
    viewer_frames(database_url)
    html = manager.get(
        f"/chargers/{CP}?part=messages&msg_dir=in&msg_action=Heartbeat", headers=HX
    ).get_data(as_text=True)
    links = re.findall(r'href="([^"]*/messages\.(?:csv|jsonl)[^"]*)"', html)
    assert len(links) == 3
    for link in links:
        assert "msg_dir=in" in link and "msg_action=Heartbeat" in link
        url = link.replace("&amp;", "&")
        body = manager.get(url).get_data()
        got = csv_rows(body)[1:] if ".csv" in url else jsonl_rows(body)
        assert len(got) == 1
    page = manager.get(f"/chargers/{CP}").get_data(as_text=True)
    assert "messages.csv" in page and "messages.jsonl" in page


@pytest.mark.parametrize(
    "params",
    [
        "msg_action=NoSuchAction",
        "msg_dir=sideways",
        "msg_from=yesterday",
        "msg_to=2026-13-45T99:99",
        "msg_from=99999-01-01",
        "msg_from=2026-03-02T00:00&msg_to=2026-03-01T00:00",
        "msg_action=%00%00",
    ],
)
def test_bad_filters_are_a_422_naming_them(manager, database_url, demo, params):
    site, _ = charger_site(manager.application, CP)
    for path in (f"/chargers/{CP}/messages.csv", f"/chargers/{CP}/messages.jsonl"):
        response = manager.get(f"{path}?{params}")
        assert response.status_code == 422, (path, params)
        assert response.mimetype == "text/plain" and response.get_data(as_text=True).strip()
    assert manager.get(f"/sites/{site}/messages.csv?{params}").status_code == 422


# --- streamed -------------------------------------------------------------------------------


def many_frames(database_url: str, n: int) -> None:
    base = NOW - timedelta(hours=2)
    frames = [
        (
            base + timedelta(milliseconds=i),
            "in",
            2,
            f"n{i}",
            "MeterValues",
            {"i": i, "v": "y" * 80},
            None,
            None,
        )
        for i in range(n)
    ]
    copy_frames(database_url, CP, frames)


def test_the_csv_streams_from_copy(manager, database_url, demo):
    many_frames(database_url, 40_000)  # ~6 MB: more than the sockets hold
    response = manager.get(f"/chargers/{CP}/messages.csv")
    assert response.is_streamed
    chunks = iter(response.response)
    assert next(chunks).startswith(b"time,charger,")  # the header, before the query runs
    first = next(chunks)
    assert len(first) >= CHUNK_BYTES and b"MeterValues" in first
    assert len(copy_backends(database_url)) == 1  # the COPY is still at work
    rest = b"".join(chunks)
    assert len(csv_rows(first + rest)) == 40_000
    assert copy_backends(database_url) == []


def test_the_jsonl_streams_from_a_server_side_cursor(manager, database_url, demo):
    many_frames(database_url, 5000)
    response = manager.get(f"/chargers/{CP}/messages.jsonl")
    assert response.is_streamed
    chunks = iter(response.response)
    first = next(chunks)
    assert first.count(b"\n") < 5000  # a first part, not the whole
    rest = b"".join(chunks)
    lines = jsonl_rows(first + rest)
    assert [line["payload"]["i"] for line in lines] == list(range(5000))


def test_the_time_range_prunes_partitions(app, demo, database_url):
    copy_frames(database_url, CP, awkward_frames()[:1])
    start = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=UTC)
    flt = message_log.MessageFilter(start=start, end=start + timedelta(days=1))
    with app.app_context(), tenant_context(demo["demo"]):
        site = db.session.scalar(select(Charger).where(Charger.ocpp_id == CP)).site_id
        for target in (
            db.session.scalar(select(Charger).where(Charger.ocpp_id == CP)),
            db.session.get(Site, site),
        ):
            stmt = message_log.export_select(target, flt)
            raw = db.session.connection().connection.driver_connection
            plan = [r[0] for r in raw.execute("EXPLAIN " + literal_select(stmt, raw))]
            scanned = set(re.findall(r"ocpp_message_\d{8}", "\n".join(plan)))
            assert scanned == {f"ocpp_message_{NOW:%Y%m%d}"}, plan


# --- a whole site ---------------------------------------------------------------------------


def site_chargers(app, site_id: int) -> list[str]:
    with app.app_context(), system_context():
        return list(
            db.session.scalars(
                select(Charger.ocpp_id).where(Charger.site_id == site_id).order_by(Charger.ocpp_id)
            )
        )


def test_the_site_export_covers_every_charger_of_the_site_and_no_other(
    manager, app, database_url, demo
):
    site, _ = charger_site(app, CP)
    mine = site_chargers(app, site)
    assert len(mine) >= 2
    with psycopg.connect(database_url) as conn:
        other = conn.execute(
            "SELECT ocpp_id FROM charger WHERE site_id <> %s AND tenant_id = %s LIMIT 1",
            (site, demo["demo"]),
        ).fetchone()[0]
    for n, ocpp_id in enumerate([*mine, other, "ACME-CP-0001"]):
        at = NOW - timedelta(minutes=10 + n)
        copy_frames(
            database_url, ocpp_id, [(at, "in", 2, f"s{n}", "Heartbeat", {"n": n}, None, None)]
        )
    params = {
        "msg_from": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "msg_to": NOW.strftime("%Y-%m-%dT%H:%M"),
    }
    response = manager.get(f"/sites/{site}/messages.csv", query_string=params)
    assert response.status_code == 200 and response.is_streamed
    assert (
        "messages-Harbour" in response.headers["Content-Disposition"]
        or "messages-" in (response.headers["Content-Disposition"])
    )
    rows = csv_rows(response.get_data())
    assert rows[0] == HEADER
    assert sorted(r[1] for r in rows[1:]) == mine
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])  # oldest first
    lines = jsonl_rows(manager.get(f"/sites/{site}/messages.jsonl", query_string=params).data)
    assert sorted(line["charger"] for line in lines) == mine
    # Without a range: the last day.
    assert sorted(r[1] for r in csv_rows(manager.get(f"/sites/{site}/messages.csv").data)[1:]) == (
        mine
    )


@pytest.mark.parametrize(
    "params",
    [
        {"msg_from": "2026-01-01T00:00", "msg_to": "2026-03-01T00:00"},
        {"msg_to": "2026-03-01T00:00", "msg_from": "2025-03-01"},
    ],
)
def test_a_site_range_over_31_days_is_refused(manager, app, demo, params):
    site, _ = charger_site(app, CP)
    response = manager.get(f"/sites/{site}/messages.csv", query_string=params)
    assert response.status_code == 422 and "31 days" in response.get_data(as_text=True)
    ok = {"msg_from": "2026-01-01T00:00", "msg_to": "2026-01-31T23:59"}  # 31 days exactly
    assert manager.get(f"/sites/{site}/messages.csv", query_string=ok).status_code == 200


def test_the_site_page_offers_the_download(manager, app, demo):
    site, _ = charger_site(app, CP)
    html = manager.get(f"/sites/{site}").get_data(as_text=True)
    assert f"/sites/{site}/messages.csv" in html and f"/sites/{site}/messages.jsonl" in html
    viewer_html = as_user(app, "viewer@demo.test").get(f"/sites/{site}").get_data(as_text=True)
    assert "messages.csv" not in viewer_html


# --- who may, and what they get -------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("admin@demo.test", 200),
        ("manager@demo.test", 200),
        ("engineer@demo.test", 200),
        ("agent@demo.test", 403),
        ("viewer@demo.test", 403),
    ],
)
def test_who_may_export(app, demo, email, status):
    client = as_user(app, email)
    site, _ = charger_site(app, CP)
    assert client.get(f"/chargers/{CP}/messages.csv").status_code == status
    assert client.get(f"/chargers/{CP}/messages.jsonl").status_code == status
    assert client.get(f"/sites/{site}/messages.csv").status_code == status


def test_the_other_tenant_gets_404(app, database_url, demo):
    copy_frames(database_url, CP, awkward_frames()[:1])
    site, _ = charger_site(app, CP)
    acme = as_user(app, "admin@acme.test")
    for path in (f"/chargers/{CP}/messages.csv", f"/chargers/{CP}/messages.jsonl"):
        assert acme.get(path).status_code == 404
    assert acme.get(f"/sites/{site}/messages.csv").status_code == 404
    assert acme.get(f"/sites/{site}/messages.jsonl").status_code == 404
    # Their own charger: their frames only.
    copy_frames(database_url, "ACME-CP-0001", awkward_frames()[:2])
    lines = jsonl_rows(acme.get("/chargers/ACME-CP-0001/messages.jsonl").data)
    assert {line["charger"] for line in lines} == {"ACME-CP-0001"} and len(lines) == 2


def test_vendors_export_only_the_chargers_they_see(app, database_url, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        theirs = db.session.get(Charger, ticket.charger_id)
        visible, site = theirs.ocpp_id, theirs.site_id
    vendor = as_user(app, "vendor@demo.test")
    copy_frames(database_url, visible, awkward_frames()[:3])
    rows = csv_rows(vendor.get(f"/chargers/{visible}/messages.csv").data)
    assert len(rows) == 4 and {r[1] for r in rows[1:]} == {visible}
    hidden = [
        f"DEMO-CP-{n:04d}"
        for n in range(1, 13)
        if vendor.get(f"/chargers/DEMO-CP-{n:04d}").status_code == 404
    ]
    assert hidden
    for ocpp_id in hidden:
        assert vendor.get(f"/chargers/{ocpp_id}/messages.csv").status_code == 404
        assert vendor.get(f"/chargers/{ocpp_id}/messages.jsonl").status_code == 404
    assert vendor.get(f"/sites/{site}/messages.csv").status_code == 403  # no site-wide file


def test_anonymous_goes_to_sign_in(client, demo):
    response = client.get(f"/chargers/{CP}/messages.csv")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
