"""The ticket list (issue 3, points 4 and 13): filters, search, sort, keyset pagination, saved
views and CSV export — each htmx route with and without HX-Request, tenant isolation, vendors,
bad input. Expected rows are computed independently from the database (as the owner)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import event, select

from cass import lifecycle
from cass.extensions import db
from tests.conftest import login, page_token

HX = {"HX-Request": "true"}
KEY_RE = re.compile(r'<a href="/tickets/([A-Z]+-\d+)">')
MORE_RE = re.compile(r'<a class="button" href="([^"]+)" hx-get="[^"]+" hx-target="closest tr"')
STATUSES = lifecycle.STATUSES
PRIORITIES = ("P1", "P2", "P3", "P4")
CATEGORIES = ("hardware", "connectivity", "payment", "firmware", "damage", "other")
CHANNELS = ("phone", "email", "web", "ocpp-auto", "api")


def signed_in(app, email: str):
    client = app.test_client()
    assert login(client, email).status_code == 303
    return client


@pytest.fixture
def manager(app, demo):
    return signed_in(app, "manager@demo.test")


# --- the database as the oracle ------------------------------------------------------------


def owner_rows(database_url: str, tenant_id: int) -> list[dict]:
    """Return every ticket of a tenant with its names, read as the owner (no RLS)."""
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(
            "SELECT t.id, tn.key_prefix || '-' || t.number AS key, t.number, t.title,"
            " t.description, t.status, t.priority, t.category, t.channel, t.site_id,"
            " t.charger_id, c.ocpp_id, t.assignee_user_id, t.assignee_vendor_id, t.created_at,"
            " t.updated_at FROM ticket t JOIN tenant tn ON tn.id = t.tenant_id"
            " LEFT JOIN charger c ON c.id = t.charger_id WHERE t.tenant_id = %s",
            (tenant_id,),
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]


def add_tickets(database_url: str, tenant_id: int, n: int, **fixed) -> list[str]:
    """Insert n tickets by COPY, three to a timestamp (ties for the keyset); return the keys."""
    with psycopg.connect(database_url) as conn:
        prefix, last = conn.execute(
            "UPDATE tenant SET last_ticket_number = last_ticket_number + %s WHERE id = %s"
            " RETURNING key_prefix, last_ticket_number",
            (n, tenant_id),
        ).fetchone()
        base = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
        columns = (
            "tenant_id, number, title, description, category, priority, status, channel,"
            " caller_name, caller_phone, created_at, updated_at"
        )
        keys = []
        with conn.cursor().copy(f"COPY ticket ({columns}) FROM STDIN") as copy:
            for i in range(n):
                number = last - n + 1 + i
                keys.append(f"{prefix}-{number}")
                row = {
                    "title": f"Extra ticket {i}",
                    "description": "Bulk loaded",
                    "category": CATEGORIES[i % 6],
                    "priority": PRIORITIES[i % 4],
                    "status": STATUSES[i % 8],
                    "channel": CHANNELS[i % 5],
                    "caller_name": None,
                    "caller_phone": None,
                    "created_at": base + timedelta(minutes=(n - i) // 3),
                    "updated_at": base + timedelta(minutes=i // 3),
                } | fixed
                copy.write_row(
                    (
                        tenant_id,
                        number,
                        row["title"],
                        row["description"],
                        row["category"],
                        row["priority"],
                        row["status"],
                        row["channel"],
                        row["caller_name"],
                        row["caller_phone"],
                        row["created_at"],
                        row["updated_at"],
                    )
                )
    return keys


def owner_id(database_url: str, sql: str, *args) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchone()[0]


def sort_key(sort: str):
    return {
        "updated": lambda r: (r["updated_at"], r["id"]),
        "created": lambda r: (r["created_at"], r["id"]),
        "priority": lambda r: (r["priority"], r["updated_at"], r["id"]),
        "status": lambda r: (r["status"], r["updated_at"], r["id"]),
        "key": lambda r: (r["number"],),
    }[sort]


def expected_keys(rows: list[dict], sort: str = "updated", reverse: bool = True) -> list[str]:
    return [r["key"] for r in sorted(rows, key=sort_key(sort), reverse=reverse)]


# --- walking the list as a browser does -----------------------------------------------------


def pages(client, query: str = "") -> Iterator[tuple[int, str]]:
    """Yield (status, body) of the table and then of each "Load more" answer (htmx)."""
    response = client.get(f"/tickets?{query}", headers=HX)
    while True:
        body = response.get_data(as_text=True)
        yield response.status_code, body
        more = MORE_RE.search(body)
        if not more:
            return
        response = client.get(html.unescape(more.group(1)), headers=HX)


def walk(client, query: str = "") -> list[str]:
    """Return every key the list shows for `query`, following "Load more" to the end."""
    keys: list[str] = []
    for status, body in pages(client, query):
        assert status == 200, body[:300]
        keys += KEY_RE.findall(body)
    return keys


# --- the page, with and without htmx --------------------------------------------------------


def test_whole_page_without_htmx(manager, database_url, demo):
    response = manager.get("/tickets")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in body
    assert 'id="ticket-filters"' in body and 'id="saved-views"' in body
    assert '<div id="ticket-list" data-live-list="/tickets"' in body
    assert 'hx-trigger="sse:ticket throttle:1s, sse:resync, tickets-changed from:body' in body
    want = expected_keys(owner_rows(database_url, demo["demo"]))
    assert KEY_RE.findall(body) == want  # 40 demo tickets: one page, newest first
    assert "Load more" not in body and "ACME-" not in body
    assert "HX-Request" in response.headers["Vary"]


def test_table_fragment_with_htmx(manager):
    response = manager.get("/tickets?status=open&priority=&site=&q=", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<div id="ticket-list" data-live-list="/tickets?status=open"')
    assert 'id="ticket-filters"' not in body and 'id="saved-views"' not in body
    # The address bar gets the canonical URL, without the form's empty fields.
    assert response.headers["HX-Push-Url"] == "/tickets?status=open"
    # ... and no new history entry when it already shows that list (e.g. a live refresh).
    current = {**HX, "HX-Current-URL": "http://localhost/tickets?status=open"}
    assert manager.get("/tickets?status=open", headers=current).headers["HX-Push-Url"] == "false"


def test_boosted_navigation_gets_the_whole_page(manager):
    response = manager.get("/tickets", headers={**HX, "HX-Boosted": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_rows_link_to_the_detail_page_and_show_the_joined_names(manager):
    body = manager.get("/tickets?q=bollard&sort=key&dir=asc", headers=HX).get_data(as_text=True)
    first = body[body.index('<tr id="ticket-') :]
    first = first[: first.index("</tr>")]
    assert re.search(r'<a href="/tickets/DEMO-9">DEMO-9</a>', first)
    assert "Bollard hit by a van" in first and "Erin Engineer" in first and "DEMO-CP-" in first
    assert any(site in first for site in ("Harbour Car Park", "Northgate", "Riverside"))


def test_load_more_with_and_without_htmx(app, manager, database_url, demo):
    add_tickets(database_url, demo["demo"], 70)
    body = manager.get("/tickets", headers=HX).get_data(as_text=True)
    assert len(KEY_RE.findall(body)) == 50
    more = html.unescape(MORE_RE.search(body).group(1))
    assert "after=" in more
    rows = manager.get(more, headers=HX)
    text = rows.get_data(as_text=True)
    assert rows.status_code == 200 and "<html" not in text and "<table" not in text
    assert text.lstrip().startswith('<tr id="ticket-') and len(KEY_RE.findall(text)) == 50
    assert "HX-Push-Url" not in rows.headers  # appending rows does not change the address
    page = manager.get(more)  # without JavaScript the link opens the next page whole
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in text
    assert KEY_RE.findall(text) == KEY_RE.findall(rows.get_data(as_text=True))


# --- keyset pagination ----------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["updated", "created", "priority", "status", "key"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_walking_every_page_shows_each_ticket_once_in_order(
    manager, database_url, demo, sort, direction
):
    add_tickets(database_url, demo["demo"], 130)  # 170 tickets, timestamps shared by three
    rows = owner_rows(database_url, demo["demo"])
    seen = walk(manager, f"sort={sort}&dir={direction}")
    assert len(seen) == len(rows) == 170
    assert len(set(seen)) == len(seen)
    assert seen == expected_keys(rows, sort, reverse=direction == "desc")


def test_walking_a_filtered_list(manager, database_url, demo):
    add_tickets(database_url, demo["demo"], 400)
    rows = [r for r in owner_rows(database_url, demo["demo"]) if r["status"] in ("new", "closed")]
    seen = walk(manager, "status=new&status=closed&sort=priority")
    assert seen == expected_keys(rows, "priority", reverse=False)
    assert len(seen) > 100


def test_a_new_ticket_does_not_shift_the_pages(manager, database_url, demo):
    """Keyset, not OFFSET: a row inserted at the top while paging is neither seen twice nor
    pushes another row out of view."""
    add_tickets(database_url, demo["demo"], 80)
    first = manager.get("/tickets", headers=HX).get_data(as_text=True)
    add_tickets(database_url, demo["demo"], 1, updated_at=datetime.now(UTC) + timedelta(days=1))
    more = html.unescape(MORE_RE.search(first).group(1))
    rest = walk_from(manager, more)
    keys = KEY_RE.findall(first) + rest
    assert len(keys) == len(set(keys)) == 120


def walk_from(client, url: str) -> list[str]:
    keys: list[str] = []
    while url:
        body = client.get(url, headers=HX).get_data(as_text=True)
        keys += KEY_RE.findall(body)
        more = MORE_RE.search(body)
        url = html.unescape(more.group(1)) if more else ""
    return keys


# --- filters ----------------------------------------------------------------------------------


def filter_cases(demo, database_url):
    """Return (query, predicate) pairs, one filter each."""
    engineer = demo["engineer@demo.test"]
    vendor = demo["vendor:Demo Field Services"]
    site = owner_id(database_url, "SELECT site_id FROM charger WHERE id = %s", demo["DEMO-CP-0004"])
    cp3 = demo["DEMO-CP-0003"]
    return [
        ("status=new", lambda r: r["status"] == "new"),
        ("status=open", lambda r: r["status"] in lifecycle.OPEN_STATUSES),
        ("status=resolved&status=closed", lambda r: r["status"] in ("resolved", "closed")),
        (
            "status=open&status=closed",
            lambda r: r["status"] != "resolved" and r["status"] != "cancelled",
        ),
        ("priority=P1", lambda r: r["priority"] == "P1"),
        ("priority=p2&priority=P4", lambda r: r["priority"] in ("P2", "P4")),
        ("category=payment", lambda r: r["category"] == "payment"),
        (f"site={site}", lambda r: r["site_id"] == site),
        ("charger=DEMO-CP-0003", lambda r: r["charger_id"] == cp3),
        (f"assignee={engineer}", lambda r: r["assignee_user_id"] == engineer),
        (
            "assignee=none",
            lambda r: r["assignee_user_id"] is None and r["assignee_vendor_id"] is None,
        ),
        (f"vendor={vendor}", lambda r: r["assignee_vendor_id"] == vendor),
        ("channel=email", lambda r: r["channel"] == "email"),
        ("created_to=2025-03-01", lambda r: r["created_at"] < datetime(2025, 3, 2, tzinfo=UTC)),
        ("created_from=2025-03-02", lambda r: r["created_at"] >= datetime(2025, 3, 2, tzinfo=UTC)),
        (
            "updated_from=2025-03-01&updated_to=2025-03-01",
            lambda r: (
                datetime(2025, 3, 1, tzinfo=UTC)
                <= r["updated_at"]
                < datetime(2025, 3, 2, tzinfo=UTC)
            ),
        ),
    ]


FILTER_IDS = [
    "status",
    "open",
    "two-statuses",
    "open-and-closed",
    "priority",
    "two-priorities",
    "category",
    "site",
    "charger",
    "assignee",
    "unassigned",
    "vendor",
    "channel",
    "created-to",
    "created-from",
    "updated-range",
]


@pytest.mark.parametrize("case", range(len(FILTER_IDS)), ids=FILTER_IDS)
def test_each_filter(manager, database_url, demo, case):
    # 1,500 minutes of extra tickets span 2025-03-01 and -02, so the date filters cut them.
    add_tickets(database_url, demo["demo"], 60, created_at=datetime(2025, 3, 2, 1, tzinfo=UTC))
    add_tickets(database_url, demo["demo"], 60)
    query, keep = filter_cases(demo, database_url)[case]
    rows = [r for r in owner_rows(database_url, demo["demo"]) if keep(r)]
    assert rows, "the case must select something"
    assert walk(manager, query) == expected_keys(rows)


def test_filters_combine(manager, database_url, demo):
    add_tickets(database_url, demo["demo"], 200)
    vendor = demo["vendor:Demo Field Services"]
    rows = [
        r
        for r in owner_rows(database_url, demo["demo"])
        if r["status"] in lifecycle.OPEN_STATUSES
        and r["priority"] in ("P1", "P2")
        and r["category"] in ("hardware", "connectivity", "damage", "payment")
        and r["channel"] != "web"
    ]
    seen = set()
    for category in ("hardware", "connectivity", "damage", "payment"):
        for channel in ("phone", "email", "ocpp-auto", "api"):
            seen |= set(
                walk(
                    manager,
                    f"status=open&priority=P1&priority=P2&category={category}&channel={channel}",
                )
            )
    assert seen == {r["key"] for r in rows} and seen
    both = walk(manager, f"status=open&vendor={vendor}&priority=P2")
    assert both == expected_keys(
        [
            r
            for r in owner_rows(database_url, demo["demo"])
            if r["status"] in lifecycle.OPEN_STATUSES
            and r["assignee_vendor_id"] == vendor
            and r["priority"] == "P2"
        ]
    )


def test_my_tickets(app, database_url, demo):
    engineer = signed_in(app, "engineer@demo.test")
    body = engineer.get("/tickets?assignee=me").get_data(as_text=True)
    assert "<h1>My tickets</h1>" in body
    mine = [
        r
        for r in owner_rows(database_url, demo["demo"])
        if r["assignee_user_id"] == demo["engineer@demo.test"]
    ]
    assert mine and KEY_RE.findall(body) == expected_keys(mine)
    # "me" is whoever looks: the manager has none assigned.
    assert walk(signed_in(app, "manager@demo.test"), "assignee=me") == []


# --- text search ------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["DEMO-7", " demo-7 ", "DEMO-0007"])
def test_search_by_key_is_exact(manager, q):
    assert walk(manager, f"q={q}") == ["DEMO-7"]


def test_search_by_key_of_another_tenant_finds_nothing(manager):
    assert walk(manager, "q=ACME-1") == []


def test_search_by_words(manager, database_url, demo):
    rows = owner_rows(database_url, demo["demo"])

    def having(*words):
        return expected_keys(
            [
                r
                for r in rows
                if all(w in (r["title"] + " " + r["description"]).lower().split() for w in words)
            ]
        )

    assert walk(manager, "q=bollard") == having("bollard") != []
    assert walk(manager, "q=Van+BOLLARD") == having("van", "bollard") != []
    assert walk(manager, "q=%22cable+holster%22") == having("cable", "holster") != []
    assert walk(manager, "q=bollard+holster") == []


def test_search_by_charger_id_prefix(manager, database_url, demo):
    rows = owner_rows(database_url, demo["demo"])
    want = [r for r in rows if (r["ocpp_id"] or "").startswith("DEMO-CP-001")]
    assert want
    assert walk(manager, "q=DEMO-CP-001") == expected_keys(want)
    assert walk(manager, "q=demo-cp-001") == expected_keys(want)  # ILIKE
    # LIKE wildcards in the query are literal characters.
    assert walk(manager, "q=DEMO-CP-00_") == []


@pytest.mark.parametrize(
    ("window", "cap"),
    [(2000, 1000), (5, 1000), (5, 3)],
    ids=["window", "full-text-probe", "walk-in-order"],
)
def test_every_search_strategy_gives_the_same_pages(
    manager, database_url, demo, monkeypatch, window, cap
):
    """Words are searched in the list's first rows, else through the full-text index (by
    ids), else in order: each path must give the same pages."""
    from cass.services import ticket_queries

    monkeypatch.setattr(ticket_queries, "SEARCH_WINDOW", window)
    monkeypatch.setattr(ticket_queries, "SEARCH_CAP", cap)
    add_tickets(database_url, demo["demo"], 150, title="Charger screen cracked")
    rows = owner_rows(database_url, demo["demo"])
    for q, keep in (
        ("screen", lambda r: "screen" in r["title"].lower().split()),
        ("bollard", lambda r: "bollard" in r["title"].lower().split()),
        ("DEMO-CP-001", lambda r: (r["ocpp_id"] or "").startswith("DEMO-CP-001")),
        ("zzzz", lambda r: False),
    ):
        for sort in ("updated", "priority"):
            want = expected_keys([r for r in rows if keep(r)], sort, reverse=sort == "updated")
            assert walk(manager, f"q={q}&sort={sort}") == want, (q, sort)
        assert walk(manager, f"q={q}&status=new") == expected_keys(
            [r for r in rows if keep(r) and r["status"] == "new"]
        )


def test_full_text_probe_is_bound_to_the_requests_tenant(database_url, demo):
    """cass_ticket_matches runs as the owner, so it must take the tenant from the transaction
    (app.tenant_id), never from its caller, and find nothing when none is bound."""
    with psycopg.connect(database_url) as conn:
        conn.execute("SET ROLE cass_app")

        def matches(tenant: str, q: str, prefix: str | None) -> int:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
            return conn.execute(
                "SELECT count(*) FROM cass_ticket_matches(%s, %s, NULL)", (q, prefix)
            ).fetchone()[0]

        demo_id, acme_id = str(demo["demo"]), str(demo["acme"])
        assert matches(demo_id, "bollard", None) == 4
        assert matches(acme_id, "bollard", None) == 1
        assert matches(demo_id, "zzzz", "ACME-CP%") == 0  # another tenant's chargers
        assert matches(demo_id, "zzzz", "DEMO-CP-000%") > 0
        assert matches("", "bollard", "%") == 0
        assert matches(demo_id, "!!!", None) == 0  # no words at all


def test_search_combines_with_filters(manager, database_url, demo):
    rows = owner_rows(database_url, demo["demo"])
    want = [r for r in rows if "charger" in r["title"].lower().split() and r["status"] == "new"]
    assert want
    assert walk(manager, "q=charger&status=new") == expected_keys(want)


# --- sort ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "sort", "reverse"),
    [
        ("", "updated", True),
        ("dir=asc", "updated", False),
        ("sort=created", "created", True),
        ("sort=created&dir=asc", "created", False),
        ("sort=priority", "priority", False),
        ("sort=priority&dir=desc", "priority", True),
        ("sort=key&dir=asc", "key", False),
        ("sort=key", "key", True),
        ("sort=status", "status", False),
        ("sort=status&dir=desc", "status", True),
    ],
)
def test_sort_orders(manager, database_url, demo, query, sort, reverse):
    body = manager.get(f"/tickets?{query}", headers=HX).get_data(as_text=True)
    assert KEY_RE.findall(body) == expected_keys(
        owner_rows(database_url, demo["demo"]), sort, reverse
    )


def test_sort_headers_toggle_and_keep_the_filters(manager):
    body = manager.get("/tickets?status=open&sort=priority", headers=HX).get_data(as_text=True)
    assert 'href="/tickets?status=open&amp;sort=priority&amp;dir=desc"' in body
    assert 'hx-get="/tickets?status=open&amp;sort=key"' in body
    assert 'aria-sort="ascending"' in body
    # The sort rides along with the filter form.
    assert '<input type="hidden" name="sort" value="priority" form="ticket-filters">' in body


# --- who sees what ------------------------------------------------------------------------------


def test_other_tenant_sees_only_its_own(app, database_url, demo):
    acme = signed_in(app, "admin@acme.test")
    keys = walk(acme, "")
    assert keys == expected_keys(owner_rows(database_url, demo["acme"]))
    assert keys and all(k.startswith("ACME-") for k in keys)


def test_forged_parameters_never_reach_another_tenant(app, manager, database_url, demo):
    acme_site = owner_id(database_url, "SELECT id FROM site WHERE tenant_id = %s", demo["acme"])
    for query in (
        f"site={acme_site}",
        f"vendor={demo['vendor:Acme Field Crew']}",
        f"assignee={demo['agent@acme.test']}",
        "charger=ACME-CP-0001",
        "q=ACME-CP",
        "q=ACME-2",
    ):
        assert walk(manager, query) == [], query
    body = manager.get(f"/tickets?site={acme_site}").get_data(as_text=True)
    assert "Acme HQ" not in body and "Acme Field Crew" not in body and "Acme Agent" not in body


def test_vendor_sees_only_their_vendors_tickets(app, database_url, demo):
    vendor = signed_in(app, "vendor@demo.test")
    theirs = [
        r
        for r in owner_rows(database_url, demo["demo"])
        if r["assignee_vendor_id"] == demo["vendor:Demo Field Services"]
    ]
    assert theirs and walk(vendor, "") == expected_keys(theirs)
    assert walk(vendor, "assignee=none") == []
    assert walk(vendor, "q=DEMO-2") == []  # a key not assigned to them
    body = vendor.get("/tickets").get_data(as_text=True)
    # No list of the operator's staff or other vendors in the filters.
    assert "Erin Engineer</option>" not in body and 'name="vendor"' not in body


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "notice"),
    [
        ("status=bogus", "Ignored status “bogus”"),
        ("priority=P9", "Ignored priority “P9”"),
        ("category=tea", "Ignored category “tea”"),
        ("channel=pigeon", "Ignored channel “pigeon”"),
        ("site=abc", "Ignored site “abc”: not an id."),
        ("site=99999999999999999999999", "Ignored site"),
        ("site=%C2%B2", "Ignored site “²”"),
        ("vendor=-1", "Ignored vendor “-1”"),
        ("assignee=someone", "Ignored assignee “someone”"),
        ("created_from=yesterday", "Ignored created from “yesterday”"),
        ("created_to=2024-13-45", "Ignored created to “2024-13-45”"),
        ("updated_from=2024-02-30", "Ignored updated from"),
        ("sort=evil", "Ignored sort “evil”"),
        ("dir=sideways", "Ignored dir “sideways”"),
        ("charger=" + "X" * 65, "Ignored charger"),
    ],
)
def test_bad_filters_are_ignored_with_a_notice(manager, database_url, demo, query, notice):
    for headers in ({}, HX):
        response = manager.get(f"/tickets?{query}", headers=headers)
        body = response.get_data(as_text=True)
        assert response.status_code == 200
        assert notice in html.unescape(body)
        # The rest of the list still works: all 40 demo tickets.
        assert len(KEY_RE.findall(body)) == 40


@pytest.mark.parametrize(
    "query",
    [
        "q=%00",
        "q=bollard%00",
        "charger=DEMO%00",
        "status=%00new",
        "q=" + "word+" * 2000,
        "q=%27%22%28%29%21%26%7C%3A*",
        "q=!!!",
        "created_from=0001-01-01&created_to=9999-12-31",
        "updated_to=9999-12-31",
        f"assignee={2**63}",
        "site=0",
    ],
)
def test_odd_input_never_fails(manager, query):
    for headers in ({}, HX):
        response = manager.get(f"/tickets?{query}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        response = manager.get(f"/tickets.csv?{query}", headers=headers)
        assert response.status_code == 200
        response.get_data()


def cursor(*values) -> str:
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "after",
    [
        "garbage!",
        "e30",  # {}
        cursor("updated", "desc"),
        cursor("created", "desc", "2025-01-01T00:00:00+00:00", 5),  # another sort
        cursor("updated", "asc", "2025-01-01T00:00:00+00:00", 5),  # another direction
        cursor("updated", "desc", "2025-01-01T00:00:00", 5),  # no time zone
        cursor("updated", "desc", "not a time", 5),
        cursor("updated", "desc", "2025-01-01T00:00:00+00:00", "5"),
        cursor("updated", "desc", "2025-01-01T00:00:00+00:00", 2**63),
        cursor("updated", "desc", "2025-01-01T00:00:00+00:00", True),
        "A" * 5000,
    ],
)
def test_bad_cursor_is_422_with_a_message(manager, after):
    rows = manager.get(f"/tickets?after={after}", headers=HX)
    body = rows.get_data(as_text=True)
    assert rows.status_code == 422
    assert "“Load more” link does not fit this list" in body and "<html" not in body
    assert KEY_RE.findall(body) == []
    page = manager.get(f"/tickets?after={after}")
    assert page.status_code == 422 and "<html" in page.get_data(as_text=True)
    assert "does not fit this list" in page.get_data(as_text=True)


def test_a_cursor_for_priority_rejects_a_bad_priority(manager):
    good = cursor("priority", "asc", "P2", "2025-01-01T00:00:00+00:00", 1)
    bad = cursor("priority", "asc", "P7", "2025-01-01T00:00:00+00:00", 1)
    assert manager.get(f"/tickets?sort=priority&after={good}", headers=HX).status_code == 200
    assert manager.get(f"/tickets?sort=priority&after={bad}", headers=HX).status_code == 422


# --- what the whole page offers --------------------------------------------------------------


def options(page: str, select_id: str) -> list[str] | None:
    """Return the labels of a select's options on the page (None: no such select)."""
    found = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    return re.findall(r"<option[^>]*>([^<]*)</option>", found.group(1)) if found else None


def test_the_page_offers_the_tenants_sites_people_and_vendors(app, database_url, demo):
    with psycopg.connect(database_url) as conn:  # as the owner: a deactivated engineer
        conn.execute("UPDATE app_user SET is_active = false WHERE email = 'engineer@demo.test'")
    page = signed_in(app, "manager@demo.test").get("/tickets").get_data(as_text=True)
    sites = ["Any", "Harbour Car Park", "Northgate Depot", "Riverside Retail Park"]
    assert options(page, "f-site") == sites
    # Everyone but viewers, active or not (old tickets keep their assignee), by name.
    people = ["Ada Admin", "Alex Agent", "Erin Engineer", "Mona Manager", "Victor Vendor"]
    assert options(page, "f-assignee") == ["Anyone", "Me", "Unassigned", *people]
    assert options(page, "f-vendor") == ["Any", "Demo Field Services"]
    # The bulk form assigns to active field workers and vendors only.
    assignees = ["— nobody —", "Ada Admin", "Mona Manager", "Demo Field Services (vendor)"]
    assert options(page, "assignee") == assignees
    assert "Acme" not in page

    page = signed_in(app, "vendor@demo.test").get("/tickets").get_data(as_text=True)
    assert options(page, "f-site") == sites
    assert options(page, "f-assignee") == ["Anyone", "Me", "Unassigned"]
    assert options(page, "f-vendor") is None and options(page, "assignee") is None


def test_the_choices_are_kept_per_tenant_and_cleared_by_changes(
    app, manager, database_url, demo, monkeypatch
):
    """The sites, people and vendors are kept per tenant: a change made through the app's
    sessions shows at once; one made elsewhere within CHOICES_SECONDS."""
    from sqlalchemy import update

    from cass.models import Site
    from cass.services import ticket_list
    from cass.tenancy import tenant_context

    monkeypatch.setattr(ticket_list, "CHOICES_SECONDS", 3600)

    def sites() -> list[str]:
        return options(manager.get("/tickets").get_data(as_text=True), "f-site")

    assert "Harbour Car Park" in sites()
    with app.app_context(), tenant_context(demo["demo"]):  # the ORM: a flush
        site = db.session.scalars(select(Site).where(Site.name == "Harbour Car Park")).one()
        site.name = "Harbour Car Park East"
        db.session.commit()
    assert "Harbour Car Park East" in sites()
    with app.app_context(), tenant_context(demo["demo"]):  # a bulk update statement
        db.session.execute(update(Site).where(Site.name.like("Harbour%")).values(name="Quay"))
        db.session.rollback()  # not committed: nothing changes, nothing is cleared
    assert "Harbour Car Park East" in sites()
    with app.app_context(), tenant_context(demo["demo"]):
        db.session.execute(update(Site).where(Site.name.like("Harbour%")).values(name="Quay"))
        db.session.commit()
    assert "Quay" in sites()
    with psycopg.connect(database_url) as conn:  # elsewhere: another process, say
        conn.execute("UPDATE site SET name = 'Quayside' WHERE name = 'Quay'")
    assert "Quay" in sites()  # kept
    monkeypatch.setattr(ticket_list, "CHOICES_SECONDS", 0)
    assert "Quayside" in sites()
    # Saved views are never kept: a view just saved is listed at once.
    monkeypatch.setattr(ticket_list, "CHOICES_SECONDS", 3600)
    assert save(manager, "Fresh", "priority=P1").status_code == 303
    assert "Fresh" in manager.get("/tickets").get_data(as_text=True)


def test_a_bad_cursor_on_the_whole_page_is_422_with_the_page_around_it(manager):
    response = manager.get("/tickets?after=garbage")
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" in body and 'id="ticket-filters"' in body
    assert "does not fit this list" in body and '<tr id="ticket-' not in body


# --- set-based: no N+1 ------------------------------------------------------------------------


def count_queries(app, client, url: str, headers) -> int:
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def _count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and "set_config" not in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", _count)
    try:
        assert client.get(url, headers=headers).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", _count)
    return len(statements)


def test_the_number_of_queries_does_not_grow_with_the_rows(app, manager, database_url, demo):
    # The user is read in the round trip that begins the transaction (cass.tenancy.open_with),
    # not as a statement of its own.
    few = count_queries(app, manager, "/tickets?priority=P4", HX)
    add_tickets(database_url, demo["demo"], 100)
    many = count_queries(app, manager, "/tickets", HX)
    assert few == many == 1  # the page (and nothing per row)
    # The whole page: its select of the saved views (and the filter choices and the bulk
    # form's assignees, while not kept) rides in the page statement's round trip.
    assert count_queries(app, manager, "/tickets", {}) == 1
    # Words not found among the list's first rows: + the full-text probe and the page by ids.
    assert count_queries(app, manager, "/tickets?q=DEMO-CP", HX) == 3
    assert count_queries(app, manager, "/tickets?q=cable+holster", HX) == 3
    assert count_queries(app, manager, "/tickets?q=DEMO-7", HX) == 2  # a key: its prefix, page


# --- SLA badges (issue 6, point 6) -----------------------------------------------------------


def sla_cell(body: str, ticket_id: int) -> str:
    """Return the SLA cell of ticket `ticket_id`'s row: the one after its priority."""
    row = body.split(f'<tr id="ticket-{ticket_id}" data-list-row>', 1)[1].split("</tr>", 1)[0]
    return re.search(r'class="badge prio-\w+">\w+</span></td>(<td[^>]*>.*?</td>)', row).group(1)


def test_rows_show_the_most_urgent_sla_clock_with_business_time_left(
    app, manager, database_url, demo
):
    from tests.test_sla_pages import make_tickets

    running, breached, none = make_tickets(app, demo, 3)
    with psycopg.connect(database_url) as conn:
        # On 24/7 (no calendar) the business time left is the wall-clock time left.
        conn.execute(
            "UPDATE sla_clock SET calendar_id = NULL, due_at = now() + CASE clock"
            " WHEN 'resolution' THEN interval '2 hours 30 minutes 30 seconds'"
            " ELSE interval '9 hours' END WHERE ticket_id = %s",
            (running,),
        )
        # Breached comes first, however soon another clock is due.
        conn.execute(
            "UPDATE sla_clock SET calendar_id = NULL, state = 'breached', breached_at = now(),"
            " due_at = now() - interval '20 minutes 30 seconds'"
            " WHERE ticket_id = %s AND clock = 'on_site'",
            (breached,),
        )
        conn.execute("DELETE FROM sla_clock WHERE ticket_id = %s", (none,))
    for headers in ({}, HX):
        body = manager.get("/tickets", headers=headers).get_data(as_text=True)
        assert ("<html" in body) is (headers == {})
        assert '<th scope="col">SLA</th>' in body
        assert sla_cell(body, running) == (
            '<td data-clock="resolution"><span class="sla-badge sla-running"'
            ' title="Resolution SLA">Resolution: 2 h 30 min left</span></td>'
        )
        cell = sla_cell(body, breached)
        assert 'data-clock="on_site"' in cell and "sla-breached" in cell
        assert "late by 20 min</span>" in cell
        assert sla_cell(body, none) == "<td></td>"


def test_sla_badges_cost_no_query_per_row(app, manager, database_url, demo):
    from tests.test_sla_pages import make_tickets

    make_tickets(app, demo, 12)  # on the tenant's business calendar
    assert manager.get("/tickets", headers=HX).status_code == 200  # the calendar, cached
    assert count_queries(app, manager, "/tickets", HX) == 1
    assert count_queries(app, manager, "/tickets?priority=P2", HX) == 1


# --- saved views ------------------------------------------------------------------------------


def saved(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT owner_id, name, shared, query FROM saved_view ORDER BY id"
        ).fetchall()


def save(client, name: str, query: str, headers=None, **extra):
    token = page_token(client, "/tickets")
    data = {"csrf_token": token, "name": name, "query": query, **extra}
    return client.post("/tickets/views", data=data, headers=headers or {})


def test_save_a_personal_view_without_htmx(app, database_url, demo):
    agent = signed_in(app, "agent@demo.test")
    response = save(agent, "Open P1", "status=open&priority=P1&after=abc&evil=1&status=bogus")
    assert response.status_code == 303
    assert response.headers["Location"] == "/tickets?status=open&priority=P1"
    # Only the list's own keys and valid values are kept.
    assert saved(database_url) == [
        (demo["agent@demo.test"], "Open P1", False, "status=open&priority=P1")
    ]
    page = agent.get("/tickets").get_data(as_text=True)
    assert '<a href="/tickets?status=open&amp;priority=P1">Open P1</a>' in page


def test_save_a_view_with_htmx_returns_the_panel(app, database_url, demo):
    agent = signed_in(app, "agent@demo.test")
    response = save(agent, "Payment issues", "category=payment&sort=key&dir=asc", HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<section id="saved-views"')
    assert '<a href="/tickets?category=payment&amp;sort=key&amp;dir=asc">Payment issues</a>' in body
    assert saved(database_url)[0][3] == "category=payment&sort=key&dir=asc"


def test_the_page_carries_its_query_for_the_save_form(manager):
    body = manager.get("/tickets?status=new&q=van&priority=", headers=HX).get_data(as_text=True)
    assert (
        '<input type="hidden" id="view-query" name="query" value="status=new&amp;q=van" '
        'form="view-save-form">' in body
    )


def test_manager_shares_a_view_and_others_see_it(app, database_url, demo):
    manager = signed_in(app, "manager@demo.test")
    assert save(manager, "Team P1", "priority=P1", shared="y").status_code == 303
    assert save(manager, "Mine only", "priority=P2").status_code == 303
    agent = signed_in(app, "agent@demo.test")
    page = agent.get("/tickets").get_data(as_text=True)
    assert "Team P1" in page and "Mine only" not in page
    # Not theirs: no delete button for it.
    assert "Delete view Team P1" not in page
    assert "Delete view Team P1" in manager.get("/tickets").get_data(as_text=True)
    acme = signed_in(app, "admin@acme.test")
    assert "Team P1" not in acme.get("/tickets").get_data(as_text=True)


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_agent_cannot_share_a_view(app, database_url, demo, headers):
    agent = signed_in(app, "agent@demo.test")
    assert save(agent, "Everyone", "priority=P1", headers, shared="y").status_code == 403
    assert saved(database_url) == []
    assert 'name="shared"' not in agent.get("/tickets").get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("x" * 81, "Field cannot be longer than 80 characters."),
        ("Dup", "You already have a view named “Dup”."),
        ("dup", "You already have a view named “dup”."),
        ("bad\x00name", "The name cannot contain control characters."),
    ],
)
@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_invalid_view_is_422_and_saves_nothing(app, database_url, demo, name, message, headers):
    agent = signed_in(app, "agent@demo.test")
    assert save(agent, "Dup", "status=new").status_code == 303
    response = save(agent, name, "status=open", headers)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html.unescape(body)
    assert ("<html" in body) == (not headers)
    assert len(saved(database_url)) == 1


def test_the_same_name_is_fine_for_another_user(app, database_url, demo):
    assert save(signed_in(app, "agent@demo.test"), "Mine", "").status_code == 303
    assert save(signed_in(app, "engineer@demo.test"), "Mine", "").status_code == 303
    assert len(saved(database_url)) == 2


def view_id(database_url: str, name: str) -> int:
    return owner_id(database_url, "SELECT id FROM saved_view WHERE name = %s", name)


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_delete_own_view(app, database_url, demo, headers):
    agent = signed_in(app, "agent@demo.test")
    save(agent, "Temp", "status=new")
    token = page_token(agent, "/tickets")
    response = agent.post(
        f"/tickets/views/{view_id(database_url, 'Temp')}/delete",
        data={"csrf_token": token},
        headers=headers,
    )
    body = response.get_data(as_text=True)
    if headers:
        assert response.status_code == 200 and body.lstrip().startswith('<section id="saved-views"')
        assert "Temp" not in body
    else:
        assert response.status_code == 303 and response.headers["Location"] == "/tickets"
    assert saved(database_url) == []


def test_delete_someone_elses_view_is_404(app, database_url, demo):
    manager = signed_in(app, "manager@demo.test")
    save(manager, "Shared", "priority=P1", shared="y")
    acme = signed_in(app, "admin@acme.test")
    save(acme, "Acme view", "")
    agent = signed_in(app, "agent@demo.test")
    token = page_token(agent, "/tickets")
    for ident in (view_id(database_url, "Shared"), view_id(database_url, "Acme view"), 2**70):
        response = agent.post(f"/tickets/views/{ident}/delete", data={"csrf_token": token})
        assert response.status_code == 404
    assert len(saved(database_url)) == 2


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_manager_shares_an_existing_view_and_stops(app, database_url, demo, headers):
    manager = signed_in(app, "manager@demo.test")
    save(manager, "Later shared", "priority=P1")
    ident = view_id(database_url, "Later shared")
    token = page_token(manager, "/tickets")
    url = f"/tickets/views/{ident}/share"
    response = manager.post(url, data={"csrf_token": token, "shared": "y"}, headers=headers)
    if headers:
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and body.lstrip().startswith('<section id="saved-views"')
        assert "Stop sharing view Later shared" in body
    else:
        assert response.status_code == 303 and response.headers["Location"] == "/tickets"
    assert saved(database_url)[0][2] is True
    assert "Later shared" in signed_in(app, "agent@demo.test").get("/tickets").get_data(
        as_text=True
    )
    assert manager.post(url, data={"csrf_token": token}, headers=headers).status_code in (200, 303)
    assert saved(database_url)[0][2] is False


def test_sharing_is_for_managers_and_only_ones_own_views(app, database_url, demo):
    agent = signed_in(app, "agent@demo.test")
    save(agent, "Agent view", "")
    ident = view_id(database_url, "Agent view")
    token = page_token(agent, "/tickets")
    response = agent.post(
        f"/tickets/views/{ident}/share", data={"csrf_token": token, "shared": "y"}
    )
    assert response.status_code == 403
    manager = signed_in(app, "manager@demo.test")
    token = page_token(manager, "/tickets")
    for target in (ident, 2**70):
        response = manager.post(
            f"/tickets/views/{target}/share", data={"csrf_token": token, "shared": "y"}
        )
        assert response.status_code == 404
    assert saved(database_url)[0][2] is False
    assert "Share view" not in agent.get("/tickets").get_data(as_text=True)


def test_saved_view_posts_need_the_csrf_token(app, database_url, demo):
    agent = signed_in(app, "agent@demo.test")
    assert agent.post("/tickets/views", data={"name": "x", "query": ""}).status_code == 400
    assert saved(database_url) == []


# --- CSV --------------------------------------------------------------------------------------


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_csv_headers_and_content(manager, database_url, demo):
    response = manager.get("/tickets.csv?status=open&sort=key&dir=asc")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    today = datetime.now(UTC).date().isoformat()
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="tickets-{today}.csv"'
    )
    rows = csv_rows(response)
    assert rows[0] == [
        "key",
        "title",
        "status",
        "priority",
        "category",
        "channel",
        "site",
        "charger",
        "connector",
        "assignee",
        "vendor",
        "caller_name",
        "caller_phone",
        "caller_email",
        "created",
        "updated",
        "resolved",
    ]
    want = [
        r for r in owner_rows(database_url, demo["demo"]) if r["status"] in lifecycle.OPEN_STATUSES
    ]
    assert [r[0] for r in rows[1:]] == expected_keys(want, "key", reverse=False)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["key"] == "DEMO-1" and first["charger"].startswith("DEMO-CP-")
    assert first["connector"] in ("1", "2") and first["caller_name"] == "Sam Driver"
    assert first["caller_phone"] == "'+44 7700 900123"  # a leading + would be a formula
    assert datetime.fromisoformat(first["created"]).tzinfo is not None


def test_csv_streams_every_row_past_the_page_size(manager, database_url, demo):
    add_tickets(database_url, demo["demo"], 2100)  # more than two server-side batches
    rows = csv_rows(manager.get("/tickets.csv"))
    assert len(rows) == 1 + 2140
    assert len({r[0] for r in rows[1:]}) == 2140
    assert [r[0] for r in rows[1:]] == expected_keys(owner_rows(database_url, demo["demo"]))


def test_csv_reads_through_a_server_side_cursor(app, database_url, demo):
    """The export holds a Postgres cursor open and fetches in batches, so memory stays flat."""
    from sqlalchemy import select, text

    from cass.models import User
    from cass.services import ticket_queries
    from cass.tenancy import tenant_context

    add_tickets(database_url, demo["demo"], 30)
    with app.app_context(), tenant_context(demo["demo"]):
        manager = db.session.scalar(select(User).where(User.email == "manager@demo.test"))
        rows = ticket_queries.export_rows(manager, ticket_queries.ListQuery(), batch=10)
        assert next(rows)[0] == "key" and next(rows)[0].startswith("DEMO-")
        cursors = db.session.scalar(text("SELECT count(*) FROM pg_cursors"))
        assert cursors == 1
        assert len(list(rows)) == 70 - 1


def test_csv_escapes_formulas(manager, database_url, demo):
    add_tickets(
        database_url,
        demo["demo"],
        1,
        title='=HYPERLINK("http://evil.test","click")',
        caller_name="@SUM(A1:A2)",
        caller_phone="-2+3",
    )
    add_tickets(database_url, demo["demo"], 1, title="+cmd|' /C calc'!A0", caller_name="Ann")
    rows = {r[0]: r for r in csv_rows(manager.get("/tickets.csv?q=bulk+loaded"))[1:]}
    assert len(rows) == 2
    titles = {r[1] for r in rows.values()}
    assert titles == {'\'=HYPERLINK("http://evil.test","click")', "'+cmd|' /C calc'!A0"}
    names = {r[11] for r in rows.values()}
    assert names == {"'@SUM(A1:A2)", "Ann"}
    assert "'-2+3" in {r[12] for r in rows.values()}


def test_csv_uses_the_same_filters_and_isolation(app, manager, database_url, demo):
    keys = [r[0] for r in csv_rows(manager.get("/tickets.csv?q=bollard"))[1:]]
    assert keys == walk(manager, "q=bollard") and keys
    everything = [r[0] for r in csv_rows(manager.get("/tickets.csv"))[1:]]
    assert len(everything) == 40 and not any(k.startswith("ACME-") for k in everything)
    # Only managers and admins export; what a vendor's export would hold is in
    # tests/test_csv_export.py (test_vendors_export_only_their_tickets).
    assert signed_in(app, "vendor@demo.test").get("/tickets.csv").status_code == 403
    acme = signed_in(app, "admin@acme.test")
    acme_keys = [r[0] for r in csv_rows(acme.get("/tickets.csv"))[1:]]
    assert acme_keys and all(k.startswith("ACME-") for k in acme_keys)


def test_csv_needs_sign_in(client, demo):
    response = client.get("/tickets.csv")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_list_needs_sign_in(client, demo):
    response = client.get("/tickets")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    response = client.get("/tickets", headers=HX)
    assert response.status_code == 401 and response.headers["HX-Redirect"].startswith("/login")
