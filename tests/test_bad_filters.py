"""Bad days, instants, ids and cursors in the web's lists and filters: each gets a clear error
(a form error, 422) or is ignored with a notice, never a 500 (an overflow when a day is added to
9999-12-31, or Postgres refusing an id above the bigint range)."""

from __future__ import annotations

import html

import pytest

from tests.conftest import as_user

BIG = "99999999999999999999"  # above bigint
RANGE = "from 2000-01-01 to 2999-12-31"

# (who, path, expected status, what the page says)
CASES = [
    # The session list: its filters are ignored with a notice (a 422, as for any bad filter).
    ("agent", "/sessions?until=9999-12-31", 422, "is not a date for “To”"),
    ("agent", f"/sessions?after=2026-11-01T08:00:00%2B00:00|{BIG}", 422, "link is broken"),
    ("agent", f"/sessions?site={BIG}", 422, "Unknown site."),
    # The CSV drops what it does not understand, as it does for a garbage date.
    ("manager", "/sessions.csv?until=9999-12-31", 200, "session,charger,connector"),
    # Reports: a form error on the field (422), on the page and for the downloads.
    ("manager", "/reports/tickets-by?end=9999-12-31", 422, f"Give a day {RANGE}."),
    ("manager", "/reports/tickets-by?end=0001-01-05", 422, f"Give a day {RANGE}."),
    ("manager", "/reports/sla?start=0001-01-01&end=0001-01-02", 422, f"Give a day {RANGE}."),
    ("manager", "/reports/workload?start=0001-01-01&end=0001-01-02", 422, "Give a day"),
    ("manager", "/reports/sessions?end=0001-01-20&by=week", 422, "Give a day"),
    ("manager", "/reports/resolution.csv?end=9999-12-31", 422, f"end: Give a day {RANGE}."),
    ("manager", "/reports/chargers.pdf?end=0001-01-05", 422, f"end: Give a day {RANGE}."),
    ("manager", "/reports/tickets-by?site=%C2%B2", 422, "Pick one of the values offered."),
    ("manager", "/reports/tickets-by?days=%C2%B2", 422, "Give a number of days"),
    # The dispatcher's week and the engineer's day: today instead, with a notice.
    ("manager", "/visits/week?start=9999-12-31", 200, "Ignored “9999-12-31”"),
    ("manager", "/visits/week?start=0001-01-03", 200, "Ignored “0001-01-03”"),
    ("engineer", "/visits/day?date=9999-12-31", 200, "Ignored “9999-12-31”"),
    ("engineer", "/visits/day?date=0001-01-01", 200, "Ignored “0001-01-01”"),
    # Job runs: a job that never ran (NUL included) is ignored with a notice.
    ("admin", "/admin/jobs?job=%00", 200, "no such job has run"),
    # The dashboard's and the new ticket's charger lookups: NUL is dropped.
    ("agent", "/?q=%00", 200, "DEMO-CP-0001"),
    ("agent", "/tickets/lookup?q=DEMO-CP-000%00", 200, "DEMO-CP-0001"),
    # The SLA preview: a site that is not one of the tenant's is a form error.
    ("manager", f"/admin/sla/preview?site_id={BIG}", 422, "Not a valid choice"),
    ("manager", f"/admin/sla?site_id={BIG}", 422, "Not a valid choice"),
    # A charger's message log: an instant at the ends of the calendar is ignored, with a notice.
    ("admin", "/chargers/DEMO-CP-0001?msg_to=9999-12-31T23:59", 200, "Ignored “9999-12-31T23:59”"),
    ("admin", "/chargers/DEMO-CP-0001?msg_from=0001-01-01T00:00%2B05:00", 200, "Ignored “0001"),
    # The audit log and the rule runs: dates and ids are notices (422); a cursor is ignored.
    ("admin", "/admin/audit?until=9999-12-31", 422, "is not a date"),
    ("admin", f"/admin/audit?actor={BIG}", 422, "Unknown user."),
    ("admin", f"/admin/audit?after=2026-01-01T00:00:00%2B00:00|{BIG}", 200, "Audit"),
    ("admin", "/admin/rules/runs?until=9999-12-31", 422, "is not a date"),
    ("admin", f"/admin/rules/runs?rule={BIG}", 422, "Unknown rule."),
    ("admin", f"/admin/rules/runs?after=2026-01-01T00:00:00%2B00:00|{BIG}", 200, "Rule runs"),
    # SLA at risk, tariffs, the charger registry: a bad cursor or site is ignored, as before.
    ("agent", f"/sla/at-risk?after=2026-01-01T00:00:00%2B00:00|{BIG}", 200, "At risk"),
    ("admin", f"/admin/tariffs?site={BIG}", 200, "Tariffs"),
    ("admin", f"/admin/chargers?site={BIG}", 200, "DEMO-CP-0001"),
]


@pytest.fixture
def users(app, demo):
    """Signed-in clients by role; errors answer 500 as in production instead of raising."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return {
        name: as_user(app, f"{name}@demo.test")
        for name in ("agent", "manager", "engineer", "admin")
    }


@pytest.mark.parametrize(("who", "path", "status", "says"), CASES, ids=[c[1] for c in CASES])
def test_a_bad_filter_is_an_error_or_a_notice_never_a_500(users, who, path, status, says):
    response = users[who].get(path)
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == status, f"{response.status_code}: {body[:300]}"
    assert says in body
