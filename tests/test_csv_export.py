"""CSV downloads (issue 7, point 3): one set of cell rules for the ticket list (written by
Postgres, COPY), the session list and the charger registry (written by Python) — quoting, the
tenant's time zone, the byte-order mark, the formula guard — streamed without a cap, for
managers and admins only, each tenant its own rows, vendors their own tickets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import Date, DateTime, Integer, Numeric, Text, literal, select
from sqlalchemy import text as sql

from cass.csv_download import (
    CHUNK_BYTES,
    CopyExport,
    _use_zone,
    copy_chunks,
    csv_cell,
    sql_cell,
    write_rows,
)
from cass.extensions import db
from cass.models import User
from cass.services import exports, ticket_queries
from cass.tenancy import tenant_context
from tests.conftest import as_user
from tests.test_sessions_page import add_session

BOM = b"\xef\xbb\xbf"
T0 = datetime(2025, 3, 1, 8, 0, 0, 999_999, tzinfo=UTC)  # winter, microseconds to drop
T1 = datetime(2025, 7, 1, 12, 30, 15, tzinfo=UTC)  # summer
# Text that trips up CSV writers and readers, spreadsheets and COPY.
AWKWARD = [
    "plain",
    "comma, inside",
    'a "quoted" word',
    '"',
    "line\nbreak",
    "crlf\r\nbreak",
    "ends with CR\r",
    "Zürich — 東京 🚗 ½",
    '=HYPERLINK("http://evil.test","click")',
    "+44 7700 900123",
    "-2+3",
    "@SUM(A1:A2)",
    "\tleading tab",
    "\rleading CR",
    "'=already guarded",
    " =space first",
    "\\.",
    "\\N",
    "NULL",
    "a;b|c\\d",
]


def guarded(text: str) -> str:
    """What a reader gets back for `text`: itself, or itself after a ' for a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def rows_of(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def set_zone(database_url: str, tenant_id: int, zone: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE tenant SET timezone = %s WHERE id = %s", (zone, tenant_id))


def add_ticket(database_url: str, tenant_id: int, **values: object) -> str:
    """Insert one ticket (as the owner); return its key."""
    row = {
        "title": "A ticket",
        "category": "hardware",
        "priority": "P3",
        "status": "new",
        "channel": "phone",
        "created_at": T0,
        "updated_at": T0,
    } | values
    with psycopg.connect(database_url) as conn:
        prefix, number = conn.execute(
            "UPDATE tenant SET last_ticket_number = last_ticket_number + 1 WHERE id = %s"
            " RETURNING key_prefix, last_ticket_number",
            (tenant_id,),
        ).fetchone()
        names = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        conn.execute(
            f"INSERT INTO ticket (tenant_id, number, {names}) VALUES (%s, %s, {marks})",
            (tenant_id, number, *row.values()),
        )
    return f"{prefix}-{number}"


def add_many(database_url: str, tenant_id: int, n: int) -> None:
    """Insert `n` plain tickets by COPY."""
    with psycopg.connect(database_url) as conn:
        last = conn.execute(
            "UPDATE tenant SET last_ticket_number = last_ticket_number + %s WHERE id = %s"
            " RETURNING last_ticket_number",
            (n, tenant_id),
        ).fetchone()[0]
        columns = "tenant_id, number, title, category, priority, status, channel, created_at,"
        columns += " updated_at"
        with conn.cursor().copy(f"COPY ticket ({columns}) FROM STDIN") as copy:
            for i in range(n):
                number = last - n + 1 + i
                copy.write_row(
                    (tenant_id, number, f"Bulk ticket {number}", "other", "P4", "closed",
                     "web", T0, T0)
                )  # fmt: skip


@contextmanager
def bound(app, tenant_id: int, email: str) -> Iterator[User]:
    """A request bound to `tenant_id`, as `email` would make it; yield that user."""
    with app.test_request_context("/tickets.csv"), tenant_context(tenant_id):
        yield db.session.scalar(select(User).where(User.email == email))


def by_key(body: bytes) -> dict[str, dict[str, str]]:
    rows = rows_of(body)
    return {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}


@pytest.fixture
def manager(app, demo):
    return as_user(app, "manager@demo.test")


# --- quoting ---------------------------------------------------------------------------------


def test_awkward_values_round_trip_through_the_csv_module(manager, database_url, demo):
    keys = {
        add_ticket(
            database_url, demo["demo"], title=text, caller_name=text, caller_email=text
        ): text
        for text in AWKWARD
    }
    response = manager.get("/tickets.csv?channel=phone&q=")
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = by_key(response.get_data())
    for key, text in keys.items():
        assert rows[key]["title"] == guarded(text), key
        assert rows[key]["caller_name"] == guarded(text)
        assert rows[key]["caller_email"] == guarded(text)


def test_null_and_empty_text_are_both_an_empty_cell(manager, database_url, demo):
    empty = add_ticket(database_url, demo["demo"], caller_name="", caller_phone=None)
    row = by_key(manager.get("/tickets.csv").get_data())[empty]
    assert row["caller_name"] == "" and row["caller_phone"] == "" and row["resolved"] == ""
    assert row["charger"] == "" and row["connector"] == ""


def test_rows_end_in_lf_and_only_awkward_cells_are_quoted(manager, database_url, demo):
    key = add_ticket(database_url, demo["demo"], title='say "hi", then\nleave', channel="api")
    body = manager.get("/tickets.csv?channel=api").get_data()
    header, row = body.split(b"\n", 1)
    assert header == b"key,title,status,priority,category,channel,site,charger,connector," + (
        b"assignee,vendor,caller_name,caller_phone,caller_email,created,updated,resolved"
    )
    assert row.startswith(key.encode() + b',"say ""hi"", then\nleave",new,P3,hardware,api,,,,,,,,,')
    assert row.endswith(b"+00:00,\n") and b"\r" not in body


# --- one rule set: Postgres and Python write the same bytes -----------------------------------


CELLS = [
    *((text, Text()) for text in AWKWARD),
    ("", Text()),
    (None, Text()),
    (-5, Integer()),
    (0, Integer()),
    (Decimal("-1.50"), Numeric(10, 2)),
    (Decimal("12.345"), Numeric(12, 3)),
    (Decimal("0E-10"), Numeric(20, 10)),
    (T0, DateTime(timezone=True)),
    (T1, DateTime(timezone=True)),
    (datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), DateTime(timezone=True)),
    (None, DateTime(timezone=True)),
    (date(2024, 2, 29), Date()),
]
ZONES = [
    "UTC",
    "America/New_York",
    "Asia/Kolkata",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
]


@pytest.mark.parametrize("zone", ZONES)
def test_postgres_writes_each_cell_as_python_does(app, demo, zone):
    header = tuple(f"c{i}" for i in range(len(CELLS)))
    statement = select(
        *(
            sql_cell(literal(value, kind)).label(name)
            for name, (value, kind) in zip(header, CELLS, strict=True)
        )
    )
    with bound(app, demo["demo"], "manager@demo.test"):
        copied = b"".join(copy_chunks(CopyExport(header, statement), ZoneInfo(zone)))
    written = write_rows([header, [csv_cell(value, ZoneInfo(zone)) for value, _ in CELLS]])
    assert copied == written.encode()
    cells = rows_of(copied)[1]
    assert cells[len(AWKWARD) : len(AWKWARD) + 4] == ["", "", "-5", "0"]  # numbers unguarded
    assert cells[len(AWKWARD) + 4 : len(AWKWARD) + 7] == ["-1.50", "12.345", "0.0000000000"]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_the_download_and_the_scheduled_exports_rows_are_the_same_bytes(
    manager, app, database_url, demo, zone
):
    set_zone(database_url, demo["demo"], zone)
    for text in AWKWARD:
        add_ticket(
            database_url, demo["demo"], title=text, caller_phone=text, created_at=T1, resolved_at=T0
        )
    downloaded = manager.get("/tickets.csv?sort=key&dir=asc").get_data()
    with bound(app, demo["demo"], "manager@demo.test") as user:
        rows = exports.export_rows(user, "tickets", {"sort": "key", "dir": "asc"})
        written = write_rows(rows).encode()
    assert downloaded == written
    assert len(rows_of(downloaded)) == 1 + 40 + len(AWKWARD)


# --- the tenant's time zone ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "winter", "summer"),
    [
        ("UTC", "2025-03-01T08:00:00+00:00", "2025-07-01T12:30:15+00:00"),
        ("America/New_York", "2025-03-01T03:00:00-05:00", "2025-07-01T08:30:15-04:00"),
        ("Asia/Kolkata", "2025-03-01T13:30:00+05:30", "2025-07-01T18:00:15+05:30"),
        ("Not/AZone", "2025-03-01T08:00:00+00:00", "2025-07-01T12:30:15+00:00"),  # UTC
    ],
)
def test_times_are_iso_8601_in_the_tenants_zone(manager, database_url, demo, zone, winter, summer):
    set_zone(database_url, demo["demo"], zone)
    key = add_ticket(database_url, demo["demo"], created_at=T0, updated_at=T1, resolved_at=T1)
    row = by_key(manager.get("/tickets.csv").get_data())[key]
    assert (row["created"], row["updated"], row["resolved"]) == (winter, summer, summer)
    assert datetime.fromisoformat(row["created"]) == T0.replace(microsecond=0)


def test_each_tenant_gets_its_own_zone(app, database_url, demo):
    set_zone(database_url, demo["demo"], "America/New_York")
    set_zone(database_url, demo["acme"], "Asia/Kolkata")
    demo_key = add_ticket(database_url, demo["demo"], created_at=T0)
    acme_key = add_ticket(database_url, demo["acme"], created_at=T0)
    demo_rows = by_key(as_user(app, "manager@demo.test").get("/tickets.csv").get_data())
    acme_rows = by_key(as_user(app, "admin@acme.test").get("/tickets.csv").get_data())
    assert demo_rows[demo_key]["created"] == "2025-03-01T03:00:00-05:00"
    assert acme_rows[acme_key]["created"] == "2025-03-01T13:30:00+05:30"


def test_a_zone_postgres_does_not_know_yet_is_written_by_python(manager, app, database_url, demo):
    """Python's zone data can be newer than the server's: PostgreSQL 16.2 has no
    America/Coyhaique (tzdata 2025b). The download is then written by Python, same rules."""
    set_zone(database_url, demo["demo"], "America/Coyhaique")
    key = add_ticket(database_url, demo["demo"], title="=x, y", created_at=T0)
    body = manager.get("/tickets.csv?sort=key&dir=asc").get_data()
    assert by_key(body)[key]["created"] == "2025-03-01T05:00:00-03:00"
    assert by_key(body)[key]["title"] == "'=x, y"
    with bound(app, demo["demo"], "manager@demo.test") as user:
        rows = exports.export_rows(user, "tickets", {"sort": "key", "dir": "asc"})
        assert body == write_rows(rows).encode()
    with bound(app, demo["demo"], "manager@demo.test"):  # and the transaction goes on
        assert not _use_zone(SimpleNamespace(key="Nowhere/Atlantis"))  # type: ignore[arg-type]
        assert _use_zone(ZoneInfo("Asia/Kolkata"))
        assert db.session.scalar(sql("SHOW timezone")) == "Asia/Kolkata"


def test_sessions_and_the_registry_use_the_tenants_zone_too(app, database_url, demo):
    set_zone(database_url, demo["demo"], "Asia/Kolkata")
    add_session(database_url, "DEMO-CP-0003", T0, 30, 1500, cost="-2.50", tag="-refund")
    manager = as_user(app, "manager@demo.test")
    rows = rows_of(manager.get("/sessions.csv?charger=DEMO-CP-0003").get_data())
    session = dict(zip(rows[0], rows[1], strict=True))
    assert session["started_at"] == "2025-03-01T13:30:00+05:30"
    assert session["stopped_at"] == "2025-03-01T14:00:00+05:30"
    assert session["cost"] == "-2.5000" and session["id_tag"] == "'-refund"  # numbers unguarded
    registry = rows_of(as_user(app, "admin@demo.test").get("/admin/chargers.csv").get_data())
    assert registry[1][0] == "DEMO-CP-0001" and len(registry) == 13


# --- the byte-order mark ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "first"),
    [
        ("/tickets.csv", b"key,title,"),
        ("/tickets.csv?status=open", b"key,title,"),
        ("/sessions.csv", b"session,charger,"),
        ("/admin/chargers.csv", b"ocpp_id,site,"),
    ],
)
def test_bom_only_when_asked(app, demo, path, first):
    admin = as_user(app, "admin@demo.test")
    sep = "&" if "?" in path else "?"
    plain = admin.get(path).get_data()
    marked = admin.get(f"{path}{sep}bom=1").get_data()
    assert plain.startswith(first) and not plain.startswith(BOM)
    assert marked == BOM + plain
    assert rows_of(marked)[0][0] == "\ufeff" + first.split(b",")[0].decode()  # Excel drops it
    assert admin.get(f"{path}{sep}bom=0").get_data() == plain


def test_list_pages_offer_a_csv_for_excel(app, demo):
    admin = as_user(app, "admin@demo.test")
    tickets = admin.get("/tickets?status=open").get_data(as_text=True)
    assert 'href="/tickets.csv?status=open&amp;bom=1"' in tickets and "CSV for Excel" in tickets
    sessions = admin.get("/sessions?state=open").get_data(as_text=True)
    assert 'href="/sessions.csv?state=open&amp;bom=1"' in sessions and "CSV for Excel" in sessions
    registry = admin.get("/admin/chargers").get_data(as_text=True)
    assert 'href="/admin/chargers.csv?bom=1"' in registry and "CSV for Excel" in registry


# --- the formula guard -----------------------------------------------------------------------


def test_formula_guard_on_text_only():
    zone = ZoneInfo("UTC")
    for text in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert csv_cell(text, zone) == "'" + text
    for text in ("1+1", " =1", "a=b", "'=1", ""):
        assert csv_cell(text, zone) == text
    assert csv_cell(-5, zone) == "-5" and csv_cell(Decimal("-0.50"), zone) == "-0.50"
    assert csv_cell(None, zone) == "" and csv_cell(date(2025, 1, 2), zone) == "2025-01-02"


def test_formula_guard_in_every_export(app, database_url, demo):
    add_ticket(database_url, demo["demo"], title="=cmd|' /C calc'!A0", caller_phone="+1 555")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE charger SET model = '@SUM(1)' WHERE ocpp_id = 'DEMO-CP-0001'")
    add_session(database_url, "DEMO-CP-0001", T0, 5, 100, tag="=2+5")
    admin = as_user(app, "admin@demo.test")
    tickets = admin.get("/tickets.csv").get_data()
    assert b"'=cmd|' /C calc'!A0,new" in tickets and b",'+1 555," in tickets
    assert b",'=2+5," in admin.get("/sessions.csv").get_data()
    assert b",'@SUM(1)," in admin.get("/admin/chargers.csv").get_data()


# --- no cap, streamed ------------------------------------------------------------------------


def test_no_row_cap_and_chunks_of_bounded_size(manager, database_url, demo):
    add_many(database_url, demo["demo"], 5000)  # past every page, batch and chunk size
    response = manager.get("/tickets.csv")
    chunks = list(response.response)
    rows = rows_of(b"".join(chunks))
    assert len(rows) == 1 + 40 + 5000 and len({row[0] for row in rows[1:]}) == 5040
    assert len(chunks) > 5 and max(len(chunk) for chunk in chunks) < CHUNK_BYTES + 1024


def copy_backends(database_url: str) -> list[int]:
    """Return the backends running a COPY of an export now."""
    with psycopg.connect(database_url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active'"
                " AND query LIKE 'COPY (SELECT%' AND pid <> pg_backend_pid()"
            )
        ]


def test_first_chunks_come_while_postgres_still_writes(manager, database_url, demo):
    add_many(database_url, demo["demo"], 40_000)  # ~5 MB: more than the sockets hold
    response = manager.get("/tickets.csv")
    assert response.is_streamed
    chunks = iter(response.response)
    assert next(chunks).startswith(b"key,title,")  # the header row, before the query runs
    first = next(chunks)
    assert first.startswith(b"DEMO-") and len(first) >= CHUNK_BYTES
    # The COPY is still at work: the rest of the rows are yet to be read.
    assert len(copy_backends(database_url)) == 1
    rest = b"".join(chunks)
    assert len(rows_of(first + rest)) == 40_040
    assert copy_backends(database_url) == []


def test_a_download_stopped_midway_leaves_the_connection_usable(app, manager, database_url, demo):
    add_many(database_url, demo["demo"], 40_000)
    response = manager.get("/tickets.csv")
    chunks = iter(response.response)
    next(chunks), next(chunks)
    response.close()  # the browser went away: the COPY is cancelled, the transaction ended
    assert copy_backends(database_url) == []
    for _ in range(3):  # every pooled connection is sound
        assert manager.get("/tickets?status=open").status_code == 200
        assert len(rows_of(manager.get("/tickets.csv?channel=api").get_data())) >= 1


# --- who may export, and what they see -------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("admin@demo.test", 200),
        ("manager@demo.test", 200),
        ("agent@demo.test", 403),
        ("engineer@demo.test", 403),
        ("vendor@demo.test", 403),
        ("viewer@demo.test", 403),
        ("admin@acme.test", 200),
        ("agent@acme.test", 403),
    ],
)
def test_only_managers_and_admins_export_tickets(app, demo, email, status):
    response = as_user(app, email).get("/tickets.csv?bom=1")
    assert response.status_code == status
    if status == 403:
        assert b"DEMO-" not in response.get_data() and b"ACME-" not in response.get_data()


def test_anonymous_goes_to_sign_in(client, demo):
    for path in ("/tickets.csv", "/tickets.csv?bom=1", "/sessions.csv", "/admin/chargers.csv"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_each_tenant_downloads_only_its_own_rows(app, database_url, demo):
    add_ticket(database_url, demo["acme"], title="Acme's = secret, ticket")
    add_session(database_url, "ACME-CP-0001", T0, 10, 500, tag="ACME-TAG")
    add_session(database_url, "DEMO-CP-0001", T0, 10, 500, tag="DEMO-TAG")
    demo_admin, acme_admin = as_user(app, "admin@demo.test"), as_user(app, "admin@acme.test")
    for path in ("/tickets.csv", "/tickets.csv?q=secret", "/sessions.csv", "/admin/chargers.csv"):
        ours, theirs = demo_admin.get(path).get_data(), acme_admin.get(path).get_data()
        assert b"ACME" not in ours and b"Acme" not in ours, path
        assert b"DEMO" not in theirs, path
    acme_keys = [row[0] for row in rows_of(acme_admin.get("/tickets.csv").get_data())[1:]]
    assert acme_keys and all(key.startswith("ACME-") for key in acme_keys)
    demo_keys = [row[0] for row in rows_of(demo_admin.get("/tickets.csv").get_data())[1:]]
    assert len(demo_keys) == 40 and all(key.startswith("DEMO-") for key in demo_keys)


def test_row_security_alone_keeps_other_tenants_out(app, database_url, demo):
    """Even a select that forgot its tenant condition gets only the bound tenant's rows."""
    from cass.models import Ticket

    header = ("title",)
    statement = select(sql_cell(Ticket.title).label("title"))  # no tenant condition
    with bound(app, demo["acme"], "admin@acme.test"):
        body = b"".join(copy_chunks(CopyExport(header, statement)))
    with psycopg.connect(database_url) as conn:
        acme = conn.execute("SELECT count(*) FROM ticket WHERE tenant_id = %s", (demo["acme"],))
        assert len(rows_of(body)) == 1 + acme.fetchone()[0]


def test_vendors_export_only_their_tickets(app, database_url, demo):
    """Vendors cannot download the list, but the export's own select keeps to what they may
    see (for scheduled exports and any future route), in COPY and in Python alike."""
    with psycopg.connect(database_url) as conn:
        theirs = {
            key
            for (key,) in conn.execute(
                "SELECT 'DEMO-' || number FROM ticket WHERE assignee_vendor_id = %s",
                (demo["vendor:Demo Field Services"],),
            )
        }
    assert theirs
    with bound(app, demo["demo"], "vendor@demo.test") as vendor:
        query = ticket_queries.ListQuery()
        copied = b"".join(copy_chunks(ticket_queries.export_copy(vendor, query)))
    with bound(app, demo["demo"], "vendor@demo.test") as vendor:
        written = write_rows(exports.export_rows(vendor, "tickets", {})).encode()
    assert {row[0] for row in rows_of(copied)[1:]} == theirs
    assert copied == written


@pytest.mark.parametrize(
    "query",
    [
        "q=o%27brien",
        "q=%27%29%3B+DROP+TABLE+ticket%3B+--",
        "charger=x%27%29+OR+1%3D1+--",
        "q=DEMO-1",
        "status=open&status=new&priority=P1&priority=P2",
        "created_from=2020-01-01&updated_to=2030-12-31&category=hardware",
        "assignee=me",
        "q=%25%5C_",
    ],
)
def test_filter_values_are_quoted_into_the_copy(manager, database_url, demo, query):
    add_ticket(database_url, demo["demo"], title="O'Brien's charger")
    response = manager.get(f"/tickets.csv?{query}")
    assert response.status_code == 200
    keys = [row[0] for row in rows_of(response.get_data())[1:]]
    listed = manager.get(f"/tickets?{query}&sort=updated").get_data(as_text=True)
    assert all(f'href="/tickets/{key}"' in listed for key in keys[:50])
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM ticket").fetchone()[0] > 40
    if query == "q=o%27brien":
        assert len(keys) == 1
