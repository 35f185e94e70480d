"""SLA admin: calendars, holidays and iCal import, policies, the preview and job runs (HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import BytesIO

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import AuditLog, BusinessCalendar, CalendarHoliday, SlaClock, SlaPolicy, SlaTarget
from cass.services import sla_admin
from cass.tenancy import system_context
from tests.conftest import as_user, page_token

ICS = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:xmas@test
DTSTART;VALUE=DATE:20261225
DTEND;VALUE=DATE:20261227
SUMMARY:Christmas
END:VEVENT
BEGIN:VEVENT
UID:may@test
DTSTART;VALUE=DATE:20260501
SUMMARY:Labour Day
RRULE:FREQ=YEARLY
END:VEVENT
BEGIN:VEVENT
UID:meeting@test
DTSTART:20261201T100000Z
DTEND:20261201T110000Z
SUMMARY:A meeting, not a day off
END:VEVENT
END:VCALENDAR
"""


def default_calendar(app, tenant: int) -> int:
    with app.app_context(), system_context():
        return db.session.scalar(
            select(BusinessCalendar.id).where(
                BusinessCalendar.tenant_id == tenant, BusinessCalendar.is_default
            )
        )


def test_the_overview_lists_policies_and_calendars_with_a_preview(app, demo):
    client = as_user(app, "manager@demo.test")
    page = client.get("/admin/sla?priority=P1&category=hardware").get_data(as_text=True)
    assert "P1 standard" in page and "Business hours" in page and "24/7" in page
    # The P1 first response runs 24/7: due 15 minutes from now.
    assert 'data-clock="first_response"' in page and "15 min on 24/7" in page
    assert "New policy" not in page  # managers read, admins change


def test_the_preview_answers_htmx_with_its_fragment_only(app, demo):
    client = as_user(app, "admin@demo.test")
    fragment = client.get(
        "/admin/sla/preview?priority=P3&category=other", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="sla-preview"') and "<html" not in html
    assert "30 h on Business hours" in html
    plain = client.get("/admin/sla/preview?priority=P3&category=other")
    assert plain.status_code == 200
    assert "<html" in plain.get_data(as_text=True) and "30 h on Business hours" in plain.get_data(
        as_text=True
    )


def test_an_admin_creates_a_calendar_and_bad_hours_get_a_clear_error(app, demo):
    client = as_user(app, "admin@demo.test")
    token = page_token(client, "/admin/sla/calendars/new")
    bad = client.post(
        "/admin/sla/calendars/new",
        data={
            "csrf_token": token,
            "name": "Night shift",
            "timezone": "Mars/Olympus",
            "hours": "mon 08:00-17:00",
        },
    )
    assert bad.status_code == 422 and "is not a timezone" in bad.get_data(as_text=True)
    bad = client.post(
        "/admin/sla/calendars/new",
        data={
            "csrf_token": token,
            "name": "Night shift",
            "timezone": "Europe/Berlin",
            "hours": "mon 17:00-08:00",
        },
    )
    assert bad.status_code == 422 and "ends before it starts" in bad.get_data(as_text=True)
    made = client.post(
        "/admin/sla/calendars/new",
        data={
            "csrf_token": token,
            "name": "Split shift",
            "timezone": "Europe/Berlin",
            "hours": "mon-fri 08:00-12:00 13:00-17:00\nsat 09:00-13:00",
        },
    )
    assert made.status_code == 303
    page = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "mon-fri 08:00-12:00 13:00-17:00; sat 09:00-13:00" in page
    with app.app_context(), system_context():
        names = db.session.scalars(
            select(BusinessCalendar.name).where(BusinessCalendar.tenant_id == demo["demo"])
        ).all()
        assert sorted(names) == ["24/7", "Business hours", "Split shift"]


def test_holidays_typed_and_imported_from_ical(app, demo):
    client = as_user(app, "admin@demo.test")
    calendar_id = default_calendar(app, demo["demo"])
    url = f"/admin/sla/calendars/{calendar_id}"
    token = page_token(client, url)
    added = client.post(
        f"{url}/holidays", data={"csrf_token": token, "day": "2026-12-31", "name": "New Year's Eve"}
    )
    assert added.status_code == 303
    again = client.post(
        f"{url}/holidays", data={"csrf_token": token, "day": "2026-12-31", "name": "Twice"}
    )
    assert again.status_code == 422 and "is a holiday already" in again.get_data(as_text=True)
    imported = client.post(
        f"{url}/import",
        data={"csrf_token": token, "file": (BytesIO(ICS), "holidays.ics")},
        content_type="multipart/form-data",
    )
    assert imported.status_code == 303
    not_ical = client.post(
        f"{url}/import",
        data={"csrf_token": token, "file": (BytesIO(b"day,name\n"), "holidays.csv")},
        content_type="multipart/form-data",
    )
    assert not_ical.status_code == 422
    with app.app_context(), system_context():
        days = set(
            db.session.scalars(
                select(CalendarHoliday.day).where(CalendarHoliday.calendar_id == calendar_id)
            )
        )
    this_year = datetime.now(UTC).year
    assert {date(2026, 12, 25), date(2026, 12, 26), date(2026, 12, 31)} <= days
    # A yearly event repeats from its first year to two years ahead.
    assert {date(y, 5, 1) for y in range(2026, this_year + 3)} <= days
    assert date(2026, 12, 1) not in days  # a timed event is not a day off


def test_ical_days_reads_all_day_and_yearly_events():
    days = sla_admin.ical_days(ICS, today=date(2026, 6, 1))
    assert days[date(2026, 12, 25)] == "Christmas" and date(2026, 12, 27) not in days
    assert {d for d, n in days.items() if n == "Labour Day"} == {
        date(2026, 5, 1),
        date(2027, 5, 1),
        date(2028, 5, 1),
    }


def test_a_policy_change_recomputes_open_clocks_and_is_audited(app, demo):
    from cass.tenancy import tenant_context
    from tests.test_sla_clocks import new_ticket

    with app.app_context(), tenant_context(demo["demo"]):
        ticket_id = new_ticket("P3").id
    with app.app_context(), system_context():
        policy_id = db.session.scalar(
            select(SlaPolicy.id).where(
                SlaPolicy.tenant_id == demo["demo"], SlaPolicy.priority == "P3"
            )
        )
    client = as_user(app, "admin@demo.test")
    url = f"/admin/sla/policies/{policy_id}/edit"
    form = client.get(url).get_data(as_text=True)
    assert "30 h" not in form and 'value="1800"' in form
    token = page_token(client, url)
    data = {
        "csrf_token": token,
        "name": "P3 standard",
        "priority": "P3",
        "active": "y",
        "first_response_minutes": "60",
        "first_response_warn": "80",
        "first_response_pause": ["on_hold"],
        "resolution_minutes": "600",
        "resolution_warn": "50",
        "resolution_pause": ["on_hold", "assigned"],
        "resolution_escalations": (
            "100% notify as_manager\n150% raise priority\n200% reassign engineer@demo.test"
        ),
        "on_site_warn": "80",
        "vendor_warn": "80",
    }
    bad = client.post(url, data=data | {"resolution_escalations": "100% call the police"})
    assert bad.status_code == 422 and "Escalation line 1" in bad.get_data(as_text=True)
    bad = client.post(url, data=data | {"resolution_escalations": "100% notify nobody@demo.test"})
    assert bad.status_code == 422 and "no user nobody@demo.test" in bad.get_data(as_text=True)
    assert client.post(url, data=data).status_code == 303
    with app.app_context(), system_context():
        targets = {
            t.clock: t
            for t in db.session.scalars(select(SlaTarget).where(SlaTarget.policy_id == policy_id))
        }
        assert set(targets) == {"first_response", "resolution"}
        assert targets["resolution"].pause_statuses == ["on_hold", "assigned"]
        assert [e["percent"] for e in targets["resolution"].escalations] == [100, 150, 200]
        clock = db.session.scalar(
            select(SlaClock).where(SlaClock.ticket_id == ticket_id, SlaClock.clock == "resolution")
        )
        assert clock.target_minutes == 600
        assert db.session.scalar(
            select(AuditLog.id).where(
                AuditLog.entity == "sla_policy", AuditLog.entity_id == policy_id
            )
        )
    # The form shows the escalations as they were written.
    assert "200% reassign engineer@demo.test" in client.get(url).get_data(as_text=True)


def test_the_default_calendar_cannot_be_deleted_and_a_used_one_neither(app, demo):
    client = as_user(app, "admin@demo.test")
    calendar_id = default_calendar(app, demo["demo"])
    url = f"/admin/sla/calendars/{calendar_id}"
    token = page_token(client, url)
    refused = client.post(f"{url}/delete", data={"csrf_token": token})
    assert refused.status_code == 422 and "default calendar cannot be deleted" in refused.get_data(
        as_text=True
    )
    with app.app_context(), system_context():
        always = db.session.scalar(
            select(BusinessCalendar.id).where(
                BusinessCalendar.tenant_id == demo["demo"], BusinessCalendar.name == "24/7"
            )
        )
    refused = client.post(f"/admin/sla/calendars/{always}/delete", data={"csrf_token": token})
    assert refused.status_code == 422 and "A policy uses this calendar" in refused.get_data(
        as_text=True
    )


def test_job_runs_are_listed_for_admins(app, demo):
    from cass.scheduler import run_locked

    run_locked(app, "matrix-job", lambda: 7)
    client = as_user(app, "admin@demo.test")
    page = client.get("/admin/jobs?job=matrix-job").get_data(as_text=True)
    assert "matrix-job" in page and "<td>7</td>" in page


@pytest.mark.parametrize("minutes,text", [(15, "15 min"), (600, "10 h"), (150, "2 h 30 min")])
def test_targets_read_as_hours_and_minutes(minutes, text):
    from cass.sla.routes import business_minutes

    assert business_minutes(minutes) == text


def test_the_preview_is_due_in_business_time(app, demo):
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
        policy, lines = sla_admin.preview("P3", None, "hardware", saturday)
        assert policy.name == "P3 standard"
        resolution = next(line for line in lines if line.clock == "resolution")
        # 30 business hours from a Saturday: Monday, Tuesday, Wednesday 08:00 + 10 h.
        assert resolution.due == datetime(2026, 12, 9, 18, 0, tzinfo=UTC)
        assert resolution.due - saturday > timedelta(days=4)
