"""The charger list (issue 5, point 2): filters, search, counts by state, keyset "Load more",
the live refresh's `through`, htmx fragments with and without HX-Request, tenants, vendors,
bad input, and set-based queries. Expected rows come from the database, read as the owner."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import event

from cass.extensions import db
from tests.conftest import as_user

HX = {"HX-Request": "true"}
ROW_RE = re.compile(r'<tr id="charger-\d+" data-list-row[^>]*>\s*<td><a href="/chargers/([^"]+)">')
MORE_RE = re.compile(r'<a class="button" href="([^"]+)" hx-get="[^"]+" hx-target="closest tr"')
LIVE_RE = re.compile(
    r'<tr id="charger-list-live" hidden(?: hx-swap-oob="true")?\s+hx-get="([^"]+)"'
)


def ids(html: str) -> list[str]:
    return ROW_RE.findall(html)


def unescape(url: str) -> str:
    return url.replace("&amp;", "&")


def owner(database_url: str, sql: str, *args):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchall()


def execute(database_url: str, sql: str, *args) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, args)


def tenant_chargers(database_url: str, tenant_id: int, where: str = "true", *args) -> list[str]:
    """Return the tenant's OCPP ids matching a condition on charger c, in list order."""
    rows = owner(
        database_url,
        f"SELECT c.ocpp_id FROM charger c JOIN site s ON s.id = c.site_id"
        f" WHERE c.tenant_id = %s AND ({where}) ORDER BY c.ocpp_id",
        tenant_id,
        *args,
    )
    return [r[0] for r in rows]


def add_chargers(database_url: str, tenant_id: int, n: int, prefix: str = "BULK") -> list[str]:
    """Insert n chargers (two connectors each) by COPY at the tenant's first site."""
    with psycopg.connect(database_url) as conn:
        site = conn.execute(
            "SELECT id FROM site WHERE tenant_id = %s ORDER BY id LIMIT 1", (tenant_id,)
        ).fetchone()[0]
        names = [f"{prefix}-{i:04d}" for i in range(n)]
        with conn.cursor().copy(
            "COPY charger (tenant_id, ocpp_id, site_id, manufacturer, model, serial, firmware)"
            " FROM STDIN"
        ) as copy:
            for i, name in enumerate(names):
                copy.write_row((tenant_id, name, site, "Bulk", "B-1", f"BSER{i:05d}", "9.9"))
        conn.execute(
            "INSERT INTO connector (tenant_id, charger_id, connector_no, status)"
            " SELECT tenant_id, id, n, 'Available' FROM charger, generate_series(1, 2) n"
            " WHERE tenant_id = %s AND ocpp_id LIKE %s",
            (tenant_id, f"{prefix}-%"),
        )
    return names


def set_connector(database_url: str, ocpp_id: str, no: int, status: str, error="NoError"):
    execute(
        database_url,
        "UPDATE connector SET status = %s, error_code = %s WHERE connector_no = %s"
        " AND charger_id = (SELECT id FROM charger WHERE ocpp_id = %s)",
        status,
        error,
        no,
        ocpp_id,
    )


@pytest.fixture
def agent(app, demo):
    return as_user(app, "agent@demo.test")


# --- pages and fragments --------------------------------------------------------------------


def test_whole_page_without_htmx(agent, database_url, demo):
    response = agent.get("/chargers")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.startswith("<!doctype html>")
    assert 'id="charger-filters"' in html and 'sse-connect="/events/chargers"' in html
    assert ids(html) == tenant_chargers(database_url, demo["demo"])
    assert "Vary" in response.headers and "HX-Request" in response.headers["Vary"]
    # The navigation offers the list.
    assert '<a href="/chargers" aria-current="page">Chargers</a>' in html


def test_table_fragment_with_htmx(agent, database_url, demo):
    response = agent.get("/chargers?online=no", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="charger-list">')
    assert "<html" not in html and 'id="charger-filters"' not in html
    assert 'id="charger-counts"' in html  # the counts come with the table
    assert ids(html) == tenant_chargers(database_url, demo["demo"], "NOT c.online")
    assert response.headers["HX-Push-Url"] == "/chargers?online=no"


def test_a_refresh_of_the_shown_list_pushes_no_url(agent):
    headers = HX | {"HX-Current-URL": "http://localhost/chargers?online=no"}
    response = agent.get("/chargers?online=no", headers=headers)
    assert response.headers["HX-Push-Url"] == "false"


def test_boosted_navigation_gets_the_whole_page(agent):
    html = agent.get("/chargers", headers=HX | {"HX-Boosted": "true"}).get_data(as_text=True)
    assert html.startswith("<!doctype html>")


def test_rows_show_state_connectors_site_and_open_tickets(agent, database_url, demo):
    execute(database_url, "UPDATE charger SET online = true, last_seen = now()")
    set_connector(database_url, "DEMO-CP-0003", 2, "Faulted", "GroundFailure")
    html = agent.get("/chargers?q=DEMO-CP-0003", headers=HX).get_data(as_text=True)
    row = html[html.index('data-list-row class="faulted"') :]
    row = row[: row.index("</tr>")]
    assert '<span class="badge ok">online</span>' in row
    assert "Faulted · GroundFailure" in row
    (site,) = owner(
        database_url,
        "SELECT s.name FROM charger c JOIN site s ON s.id = c.site_id WHERE ocpp_id = %s",
        "DEMO-CP-0003",
    )[0]
    assert site in row
    (open_tickets,) = owner(
        database_url,
        "SELECT count(*) FROM ticket t JOIN charger c ON c.id = t.charger_id WHERE c.ocpp_id = %s"
        " AND t.status IN ('new','assigned','in_progress','on_hold','reopened')",
        "DEMO-CP-0003",
    )[0]
    assert f'status=open">{open_tickets}</a>' in row


# --- filters and counts ---------------------------------------------------------------------

TODAY = datetime.now(UTC).date()


def prepare_states(database_url: str) -> None:
    """Give the demo chargers a mix of states, models, firmware and warranties."""
    execute(database_url, "UPDATE charger SET online = (ocpp_id < 'DEMO-CP-0006')")
    set_connector(database_url, "DEMO-CP-0001", 1, "Available")
    set_connector(database_url, "DEMO-CP-0001", 2, "Charging")
    set_connector(database_url, "DEMO-CP-0002", 1, "Faulted", "PowerMeterFailure")
    set_connector(database_url, "DEMO-CP-0007", 2, "Faulted", "OtherError")
    set_connector(database_url, "DEMO-CP-0008", 1, "Available")
    execute(database_url, "UPDATE charger SET firmware = '2.0.0' WHERE ocpp_id = 'DEMO-CP-0004'")
    execute(
        database_url,
        "UPDATE charger SET warranty_end = %s WHERE ocpp_id IN ('DEMO-CP-0005', 'DEMO-CP-0009')",
        TODAY - timedelta(days=1),
    )
    execute(database_url, "UPDATE charger SET warranty_end = NULL WHERE ocpp_id = 'DEMO-CP-0010'")


def has_connector(status: str) -> str:
    return f"EXISTS (SELECT 1 FROM connector k WHERE k.charger_id = c.id AND k.status = '{status}')"


FILTERS = [
    ("online=yes", "c.online"),
    ("online=no", "NOT c.online"),
    ("connector=Available", has_connector("Available")),
    ("connector=charging", has_connector("Charging")),  # case-insensitive
    ("faulted=1", has_connector("Faulted")),
    ("model=HYC300", "c.model = 'HYC300'"),
    ("firmware=2.0.0", "c.firmware = '2.0.0'"),
    ("warranty=expired", "c.warranty_end < current_date"),
    ("warranty=active", "c.warranty_end >= current_date OR c.warranty_end IS NULL"),
    ("site={site}", "c.site_id = {site}"),
    ("online=no&faulted=1", f"NOT c.online AND {has_connector('Faulted')}"),
    ("online=yes&model=S-Series", "c.online AND c.model = 'S-Series'"),
]


@pytest.mark.parametrize(("params", "where"), FILTERS, ids=[f[0] for f in FILTERS])
def test_each_filter(agent, database_url, demo, params, where):
    prepare_states(database_url)
    site = owner(database_url, "SELECT min(id) FROM site WHERE tenant_id = %s", demo["demo"])[0][0]
    params, where = params.format(site=site), where.format(site=site)
    expected = tenant_chargers(database_url, demo["demo"], where)
    assert expected, "the case must select something"
    assert ids(agent.get(f"/chargers?{params}", headers=HX).get_data(as_text=True)) == expected
    assert ids(agent.get(f"/chargers?{params}").get_data(as_text=True)) == expected


def test_counts_by_state_match_the_database(agent, database_url, demo):
    prepare_states(database_url)
    html = agent.get("/chargers", headers=HX).get_data(as_text=True)

    def tile(label: str) -> int:
        match = re.search(rf'<span class="muted">{label}</span><strong>(\d+)</strong>', html)
        assert match, label
        return int(match.group(1))

    tenant = demo["demo"]
    assert tile("Chargers") == len(tenant_chargers(database_url, tenant))
    assert tile("Online") == len(tenant_chargers(database_url, tenant, "c.online"))
    assert tile("Offline") == len(tenant_chargers(database_url, tenant, "NOT c.online"))
    assert tile("Faulted") == len(tenant_chargers(database_url, tenant, has_connector("Faulted")))
    for status, count in owner(
        database_url,
        "SELECT status, count(*) FROM connector WHERE tenant_id = %s GROUP BY status",
        tenant,
    ):
        if status != "Faulted":
            assert tile(f"{status} connectors") == count


def test_counts_follow_the_other_filters_but_not_the_state_ones(agent, database_url, demo):
    prepare_states(database_url)
    html = agent.get("/chargers?model=HYC300&online=yes", headers=HX).get_data(as_text=True)
    hyc = tenant_chargers(database_url, demo["demo"], "c.model = 'HYC300'")
    online = tenant_chargers(database_url, demo["demo"], "c.model = 'HYC300' AND c.online")
    assert f'<span class="muted">Chargers</span><strong>{len(hyc)}</strong>' in html
    assert f'<span class="muted">Online</span><strong>{len(online)}</strong>' in html
    # The active tile turns its filter off again, keeping the others.
    assert 'href="/chargers?model=HYC300"\n   hx-get="/chargers?model=HYC300"' in html
    assert ids(html) == online


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "where"),
    [
        ("de2024007", "c.serial = 'DE2024007'"),  # serial, any case
        ("CP-0011", "c.ocpp_id LIKE '%%CP-0011'"),
        ("demo-at-004", "c.asset_tag = 'DEMO-AT-004'"),
        ("northgate", "s.name ILIKE '%%northgate%%'"),
        ("riverside way", "s.address ILIKE '%%riverside way%%'"),
    ],
)
def test_search_by_id_serial_asset_tag_site_and_address(agent, database_url, demo, q, where):
    expected = tenant_chargers(database_url, demo["demo"], where)
    assert expected
    assert ids(agent.get("/chargers", query_string={"q": q}).get_data(as_text=True)) == expected


@pytest.mark.parametrize("q", ["%", "_", "DEMO\\", "' OR 1=1 --"])
def test_search_treats_wildcards_and_quotes_as_text(agent, q):
    response = agent.get("/chargers", query_string={"q": q}, headers=HX)
    assert response.status_code == 200
    assert ids(response.get_data(as_text=True)) == []


def test_search_combines_with_filters(agent, database_url, demo):
    prepare_states(database_url)
    html = agent.get("/chargers?q=harbour&online=yes").get_data(as_text=True)
    assert ids(html) == tenant_chargers(
        database_url, demo["demo"], "s.name ILIKE '%%harbour%%' AND c.online"
    )


# --- keyset pagination and the live refresh -------------------------------------------------


def test_load_more_with_and_without_htmx(agent, database_url, demo):
    add_chargers(database_url, demo["demo"], 60)
    everything = tenant_chargers(database_url, demo["demo"])
    first = agent.get("/chargers").get_data(as_text=True)
    assert ids(first) == everything[:50]
    more = unescape(MORE_RE.search(first).group(1))
    assert more == f"/chargers?after={everything[49]}"
    # htmx: the next rows only, and the live row moved along (out of band) to re-read them too.
    rows = agent.get(more, headers=HX).get_data(as_text=True)
    assert "<table" not in rows and ids(rows) == everything[50:]
    assert MORE_RE.search(rows) is None  # the end
    live = re.search(
        r'<tr id="charger-list-live" hidden hx-swap-oob="true"\s+hx-get="([^"]+)"', rows
    )
    assert live and unescape(live.group(1)) == f"/chargers?through={everything[-1]}"
    # Without htmx: the whole page, starting after the cursor.
    page = agent.get(more).get_data(as_text=True)
    assert page.startswith("<!doctype html>") and ids(page) == everything[50:]


def test_walking_every_page_shows_each_charger_once_in_order(agent, database_url, demo):
    add_chargers(database_url, demo["demo"], 130)
    seen: list[str] = []
    url = "/chargers?faulted=0&model=B-1"
    html = agent.get(url, headers=HX).get_data(as_text=True)
    while True:
        seen += ids(html)
        match = MORE_RE.search(html)
        if not match:
            break
        html = agent.get(unescape(match.group(1)), headers=HX).get_data(as_text=True)
    assert seen == tenant_chargers(database_url, demo["demo"], "c.model = 'B-1'")
    assert len(seen) == 130


def test_the_live_refresh_reads_every_loaded_row(agent, database_url, demo):
    names = add_chargers(database_url, demo["demo"], 80)
    everything = tenant_chargers(database_url, demo["demo"])
    through = everything[69]
    html = agent.get(f"/chargers?through={through}", headers=HX).get_data(as_text=True)
    assert ids(html) == everything[:70]
    assert unescape(LIVE_RE.search(html).group(1)) == f"/chargers?through={through}"
    assert unescape(MORE_RE.search(html).group(1)) == f"/chargers?after={through}"
    # A charger that went offline meanwhile shows so in the refresh.
    execute(database_url, "UPDATE charger SET online = true WHERE ocpp_id = %s", names[0])
    html = agent.get(f"/chargers?through={through}", headers=HX).get_data(as_text=True)
    row = html[html.index(f">{names[0]}</a>") :]
    assert '<span class="badge ok">online</span>' in row[: row.index("</tr>")]


@pytest.mark.parametrize("after", ["not/a/cursor", "x" * 70, "<script>", "a b"])
def test_a_bad_cursor_is_422_with_a_message(agent, after):
    response = agent.get("/chargers", query_string={"after": after}, headers=HX)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "does not fit this list" in html and ids(html) == []
    whole = agent.get("/chargers", query_string={"after": after})
    assert whole.status_code == 422 and 'id="charger-filters"' in whole.get_data(as_text=True)
    live = agent.get("/chargers", query_string={"through": after}, headers=HX)
    assert live.status_code == 422


@pytest.mark.parametrize(
    ("query", "notice"),
    [
        ("site=abc", "Ignored site"),
        ("site=99999999999999999999", "Ignored site"),
        ("online=maybe", "Ignored online"),
        ("connector=Broken", "Ignored connector status"),
        ("faulted=perhaps", "Ignored faulted"),
        ("warranty=soon", "Ignored warranty"),
        ("model=" + "m" * 81, "Ignored model"),
    ],
)
def test_bad_filters_are_ignored_with_a_notice(agent, database_url, demo, query, notice):
    response = agent.get(f"/chargers?{query}", headers=HX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert notice in html
    assert ids(html) == tenant_chargers(database_url, demo["demo"])


def test_odd_input_never_fails(agent):
    for query in ("q=%00", "q=" + "é" * 500, "site=0", "site=-1", "connector=", "q=%FF"):
        assert agent.get(f"/chargers?{query}", headers=HX).status_code == 200


# --- who sees what --------------------------------------------------------------------------


def test_other_tenant_sees_only_its_own(app, database_url, demo):
    acme = as_user(app, "agent@acme.test")
    html = acme.get("/chargers").get_data(as_text=True)
    assert ids(html) == tenant_chargers(database_url, demo["acme"])
    assert all(name.startswith("ACME-") for name in ids(html))
    # Searching or filtering for the other tenant's things finds nothing.
    assert ids(acme.get("/chargers?q=DEMO-CP").get_data(as_text=True)) == []
    demo_site = owner(database_url, "SELECT min(id) FROM site WHERE tenant_id = %s", demo["demo"])
    assert ids(acme.get(f"/chargers?site={demo_site[0][0]}").get_data(as_text=True)) == []
    assert "Harbour Car Park" not in html  # nor the other tenant's sites among the choices


def test_vendor_sees_the_chargers_of_their_vendors_tickets_and_those_they_service(
    app, database_url, demo
):
    vendor = demo["vendor:Demo Field Services"]
    on_tickets = tenant_chargers(
        database_url,
        demo["demo"],
        "c.id IN (SELECT charger_id FROM ticket WHERE assignee_vendor_id = %s)",
        vendor,
    )
    assert on_tickets and len(on_tickets) < 12
    client = as_user(app, "vendor@demo.test")
    assert ids(client.get("/chargers").get_data(as_text=True)) == on_tickets
    hidden = next(c for c in tenant_chargers(database_url, demo["demo"]) if c not in on_tickets)
    assert client.get(f"/chargers/{hidden}").status_code == 404
    assert client.get(f"/chargers/{on_tickets[0]}").status_code == 200
    # Made the charger's servicing vendor: it shows.
    execute(database_url, "UPDATE charger SET vendor_id = %s WHERE ocpp_id = %s", vendor, hidden)
    assert ids(client.get("/chargers").get_data(as_text=True)) == sorted([*on_tickets, hidden])
    assert client.get(f"/chargers/{hidden}").status_code == 200


def test_a_vendor_with_no_tickets_and_no_chargers_sees_none(app, database_url, demo):
    execute(database_url, "UPDATE ticket SET assignee_vendor_id = NULL")
    client = as_user(app, "vendor@demo.test")
    html = client.get("/chargers").get_data(as_text=True)
    assert ids(html) == [] and "No charger matches" in html
    assert client.get("/chargers/DEMO-CP-0001").status_code == 404


def test_the_list_needs_sign_in(client, demo):
    response = client.get("/chargers")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# --- set-based: no N+1 ----------------------------------------------------------------------


def count_queries(app, client, url: str, headers) -> int:
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def _count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and (
            "set_config" not in statement
        ):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", _count)
    try:
        assert client.get(url, headers=headers).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", _count)
    return len(statements)


def test_the_number_of_queries_does_not_grow_with_the_rows(app, agent, database_url, demo):
    # The user is read in the round trip that opens the transaction (tenancy.open_with), so
    # these count the list's own selects.
    # All the matching chargers fit on the page: the counts come from the rows themselves.
    assert count_queries(app, agent, "/chargers?q=DEMO-CP-0001", HX) == 1  # the page
    add_chargers(database_url, demo["demo"], 100)
    # More than a page: the page, the counts. Nothing per row.
    assert count_queries(app, agent, "/chargers", HX) == 2
    assert count_queries(app, agent, "/chargers?online=no", HX) == 2  # a state filter
    # The whole page adds one select of the filter choices.
    assert count_queries(app, agent, "/chargers", {}) == 3
    assert count_queries(app, agent, "/chargers?through=BULK-0099", HX) == 2


def test_counts_from_the_rows_equal_counts_from_the_database(app, agent, database_url, demo):
    """The two ways of counting agree (a filter whose chargers fit on one page)."""
    from cass.models import User
    from cass.services import charger_list
    from cass.tenancy import tenant_context

    prepare_states(database_url)
    with app.app_context(), tenant_context(demo["demo"]):
        actor = db.session.get(User, demo["agent@demo.test"])
        for params in ({}, {"model": "HYC300"}, {"q": "harbour"}, {"site": "2"}):
            query = charger_list.parse_query(params)
            listing = charger_list.list_page(actor, query)
            assert listing.next_after is None
            assert charger_list.counts_for(actor, query, listing) == charger_list.state_counts(
                actor, query
            )


def test_warranty_expiry_is_today_in_utc(agent, database_url, demo):
    execute(
        database_url,
        "UPDATE charger SET warranty_end = %s WHERE ocpp_id = 'DEMO-CP-0001'",
        datetime.now(UTC).date(),
    )
    expired = ids(agent.get("/chargers?warranty=expired").get_data(as_text=True))
    assert "DEMO-CP-0001" not in expired  # the warranty's last day still counts
    assert isinstance(TODAY, date)


# The row markup as the list's template wrote it before cass/chargers/rows.py took over.
TEMPLATE_ROW = (
    '{% for c in rows %}\n<tr id="charger-{{ c.id }}" data-list-row{% if c.faulted %}'
    ' class="faulted"{% endif %}>\n'
    '  <td><a href="{{ page_start }}{{ c.ocpp_id }}{{ page_end }}">{{ c.ocpp_id }}</a>'
    '{% if c.registration != "accepted" %} <span class="badge">{{ c.registration }}</span>'
    "{% endif %}</td>\n"
    '  <td>{% if c.online %}<span class="badge ok">online</span>{% else %}'
    '<span class="badge bad">offline</span>{% endif %}<br><small class="muted">'
    '{% if c.last_seen %}seen <time datetime="{{ c.last_seen.isoformat() }}">'
    "{{ c.last_seen | utc }}</time>{% else %}never seen{% endif %}</small></td>\n"
    '  <td class="connectors">{% for no, status, error in c.connectors %}'
    '<span class="connector"><small>{{ no }}</small> <span class="badge cs-'
    '{{ connector_tones.get(status, \'idle\') }}">{{ status }}{% if error != "NoError" %}'
    ' · {{ error }}{% endif %}</span></span>{% else %}<span class="muted">—</span>'
    "{% endfor %}</td>\n"
    '  <td class="optional">{{ c.site or "" }}</td>\n'
    '  <td class="optional">{{ c.manufacturer or "" }} {{ c.model or "" }}</td>\n'
    '  <td class="optional">{{ c.serial or "—" }}<br><small class="muted">'
    '{{ c.asset_tag or "" }}</small></td>\n'
    '  <td class="optional">{{ c.firmware or "—" }}</td>\n'
    '  <td class="optional">{% if c.warranty_end %}{% if c.warranty_end < today %}'
    '<span class="badge bad">expired</span> {% endif %}{{ c.warranty_end.isoformat() }}'
    '{% else %}<span class="muted">—</span>{% endif %}</td>\n'
    "  <td>{% if c.open_tickets %}"
    '<a href="{{ tickets_start }}{{ c.ocpp_id }}{{ tickets_end }}">{{ c.open_tickets }}</a>'
    '{% else %}<span class="muted">0</span>{% endif %}</td>\n'
    "</tr>\n{% endfor %}"
)


def test_rows_written_in_python_match_the_template_they_replaced(app):
    from cass.chargers.rows import charger_rows
    from cass.services.charger_list import ChargerRow

    today = date(2026, 11, 28)
    seen = datetime(2026, 11, 28, 13, 5, 9, 123456, tzinfo=UTC)
    rows = [
        ChargerRow(
            1, "CP-1", "ABB", "Terra", "SN1", "AT1", "1.2", True, seen, today, "accepted", 1,
            "Depot", [(1, "Available", "NoError"), (2, "Faulted", "GroundFailure")], 2,
        ),
        ChargerRow(
            2, "CP<2>&\"'", None, None, None, None, None, False, None, None, "pending", 2,
            None, [], 0,
        ),
        ChargerRow(
            3, "CP-3", "A&B", "<M>", "S\"N", "A'T", "<1>", False,
            datetime(2026, 3, 29, 1, 30, 5, tzinfo=timezone(timedelta(hours=2))),
            today - timedelta(days=1), "rejected", 3, "Site <&>",
            [(1, "Weird<>", "Err&"), (2, "Charging", "NoError")], 0,
        ),
    ]  # fmt: skip
    urls = ("/chargers/", "", "/tickets?charger=", "&status=open")
    with app.test_request_context():
        expected = app.jinja_env.from_string(TEMPLATE_ROW).render(
            rows=rows,
            page_start=urls[0],
            page_end=urls[1],
            tickets_start=urls[2],
            tickets_end=urls[3],
            today=today,
        )
        assert str(charger_rows(rows, *urls, today)) == expected
