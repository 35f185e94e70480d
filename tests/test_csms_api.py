"""Events from an operator's other CSMS (issue 5, point 7): POST /api/v1/csms/events signed with
the tenant's secret — signatures, the replay window, validation, idempotency (also under a
race), what each kind does to the charger's history, uptime and the workflow rules; and the
admin page that makes the secret."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import AuditLog
from cass.services import uptime
from cass.services.csms_events import sign
from cass.tenancy import system_context, tenant_context
from tests.conftest import as_user, page_token
from tests.ocpp_support import execute, query

URL = "/api/v1/csms/events"
SECRET = "test-secret-0123456789-abcdefghij"
HX = {"HX-Request": "true"}


@pytest.fixture
def signed(database_url, demo):
    """Give the demo tenant a CSMS secret."""
    execute(database_url, "UPDATE tenant SET csms_secret = %s WHERE slug = 'demo'", (SECRET,))
    return SECRET


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def event(**overrides) -> dict:
    """Return an event body; it happened now unless `occurred_at` says otherwise."""
    body = {
        "event_id": "evt-1",
        "kind": "connector_faulted",
        "ocpp_id": "DEMO-CP-0001",
        "connector_no": 1,
        "error_code": "GroundFailure",
        "occurred_at": iso(datetime.now(UTC)),
        "data": {"info": "RCD tripped"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def post(client, body, *, tenant="demo", secret=SECRET, ts=None, signature=None, drop=()):
    """Send `body` (a dict, or raw bytes) signed as the README says."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time())) if ts is None else str(ts)
    headers = {
        "X-CASS-Tenant": tenant,
        "X-CASS-Timestamp": stamp,
        "X-CASS-Signature": signature if signature is not None else sign(secret, stamp, raw),
    }
    for name in drop:
        headers.pop(name)
    return client.post(URL, data=raw, content_type="application/json", headers=headers)


def counts(database_url) -> tuple[int, int, int]:
    """Return how many csms_event, charger_event and firmware_job rows there are."""
    return query(
        database_url,
        "SELECT (SELECT count(*) FROM csms_event), (SELECT count(*) FROM charger_event), "
        "(SELECT count(*) FROM firmware_job)",
    )[0]


def connector(database_url, charger_id, no=1) -> tuple:
    return query(
        database_url,
        "SELECT status, error_code FROM connector WHERE charger_id = %s AND connector_no = %s",
        (charger_id, no),
    )[0]


def test_a_signed_event_is_recorded_unhandled_and_applied(client, database_url, demo, signed):
    body = event()
    response = post(client, body)  # note: no CSRF token, no session
    assert response.status_code == 202, response.get_json()
    answer = response.get_json()
    assert answer["duplicate"] is False and answer["event_id"] == "evt-1"
    stored = query(
        database_url,
        "SELECT id, tenant_id, event_id, kind, ocpp_id, charger_id, occurred_at, payload, "
        "handled_at FROM csms_event",
    )
    assert stored == [
        (
            answer["id"],
            demo["demo"],
            "evt-1",
            "connector_faulted",
            "DEMO-CP-0001",
            demo["DEMO-CP-0001"],
            datetime.fromisoformat(body["occurred_at"]),
            body,
            None,  # for the workflow worker
        )
    ]
    history = query(
        database_url,
        "SELECT kind, connector_no, status, error_code, info, at, handled_at IS NOT NULL, "
        "data->>'source', (data->>'csms_event_id')::bigint FROM charger_event",
    )
    assert history == [
        (
            "status",
            1,
            "Faulted",
            "GroundFailure",
            "RCD tripped",
            datetime.fromisoformat(body["occurred_at"]),
            True,  # the rules see it through the csms_event row only
            "csms",
            answer["id"],
        )
    ]
    assert connector(database_url, demo["DEMO-CP-0001"]) == ("Faulted", "GroundFailure")


def test_a_replay_is_a_duplicate_and_changes_nothing(client, database_url, demo, signed):
    first = post(client, event())
    assert first.status_code == 202
    before = counts(database_url)
    # The same event id again, even with other contents (and a fresh signature).
    again = post(client, event(kind="status", status="Available", error_code=None))
    assert again.status_code == 200
    assert again.get_json() == {
        "id": first.get_json()["id"],
        "event_id": "evt-1",
        "duplicate": True,
    }
    assert counts(database_url) == before
    assert connector(database_url, demo["DEMO-CP-0001"]) == ("Faulted", "GroundFailure")
    # The other tenant may use the same event id: ids are per tenant.
    execute(database_url, "UPDATE tenant SET csms_secret = 'acme-secret' WHERE slug = 'acme'")
    acme = post(client, event(ocpp_id="ACME-CP-0001"), tenant="acme", secret="acme-secret")
    assert acme.status_code == 202


def test_concurrent_copies_of_one_event_make_one_row(app, database_url, demo, signed):
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(post(client, event(event_id="evt-race")).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 200, 200, 202]
    assert counts(database_url)[:2] == (1, 1)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no headers", "missing_signature"),
        ("no signature", "missing_signature"),
        ("no tenant", "missing_signature"),
        ("wrong secret", "bad_signature"),
        ("another body's signature", "bad_signature"),
        ("no sha256= prefix", "bad_signature"),
        ("unknown tenant", "bad_signature"),
        ("tenant without a secret", "bad_signature"),
        ("stale timestamp", "stale_timestamp"),
        ("timestamp from the future", "stale_timestamp"),
        ("timestamp not a number", "bad_timestamp"),
    ],
)
def test_requests_not_signed_by_the_tenant_are_401_and_store_nothing(
    client, database_url, demo, signed, case, code
):
    now = int(time.time())
    body = json.dumps(event()).encode()
    kwargs: dict = {
        "no headers": {"drop": ("X-CASS-Tenant", "X-CASS-Timestamp", "X-CASS-Signature")},
        "no signature": {"drop": ("X-CASS-Signature",)},
        "no tenant": {"drop": ("X-CASS-Tenant",)},
        "wrong secret": {"secret": "not-the-secret"},
        "another body's signature": {"signature": sign(SECRET, str(now), b"{}")},
        "no sha256= prefix": {"signature": sign(SECRET, str(now), body)[len("sha256=") :]},
        "unknown tenant": {"tenant": "nobody"},
        "tenant without a secret": {"tenant": "acme"},
        "stale timestamp": {"ts": now - 301},
        "timestamp from the future": {"ts": now + 301},
        "timestamp not a number": {"ts": "2026-11-28T10:00:00Z"},
    }[case]
    if case in ("another body's signature", "no sha256= prefix"):
        kwargs["ts"] = now
    response = post(client, body, **kwargs)
    assert response.status_code == 401
    assert response.get_json()["error"] == code
    assert response.headers["WWW-Authenticate"].startswith("CASS-HMAC-SHA256")
    assert counts(database_url) == (0, 0, 0)


def test_a_timestamp_inside_the_window_is_accepted(client, database_url, demo, signed):
    assert post(client, event(event_id="a"), ts=int(time.time()) - 290).status_code == 202
    assert post(client, event(event_id="b"), ts=int(time.time()) + 290).status_code == 202


def test_the_other_tenants_secret_does_not_sign_for_us(client, database_url, demo, signed):
    execute(database_url, "UPDATE tenant SET csms_secret = 'acme-secret' WHERE slug = 'acme'")
    response = post(client, event(), tenant="demo", secret="acme-secret")
    assert response.status_code == 401
    assert counts(database_url) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        (b"{not json", "invalid_json", None),
        (b'{"event_id": NaN}', "invalid_json", None),
        (b'{"event_id": "x\\u0000"}', "invalid_json", None),
        (b"\xff\xfe", "invalid_json", None),
        (b"[1, 2]", "invalid_event", None),
        (b"{}", "invalid_event", {"event_id", "kind", "ocpp_id", "occurred_at"}),
        (event(kind="exploded"), "invalid_event", {"kind"}),
        (event(event_id=""), "invalid_event", {"event_id"}),
        (event(event_id="x" * 101), "invalid_event", {"event_id"}),
        (event(connector_no=-1), "invalid_event", {"connector_no"}),
        (event(connector_no="1"), "invalid_event", {"connector_no"}),
        (event(connector_no=True), "invalid_event", {"connector_no"}),
        (event(kind="status"), "invalid_event", {"status"}),
        (event(kind="status", status="Broken"), "invalid_event", {"status"}),
        (event(kind="firmware_status", status="Available"), "invalid_event", {"status"}),
        (event(status="Available"), "invalid_event", {"status"}),  # a fault that is not one
        (event(kind="charger_online", status="Available"), "invalid_event", {"status"}),
        (event(occurred_at="yesterday"), "invalid_event", {"occurred_at"}),
        (event(occurred_at="2026-11-20T10:00:00"), "invalid_event", {"occurred_at"}),
        (event(occurred_at="2099-01-01T00:00:00Z"), "invalid_event", {"occurred_at"}),
        (event(data=[1]), "invalid_event", {"data"}),
        (event(error_code="E" * 41), "invalid_event", {"error_code"}),
        (event(kind="charger_offline", offline_minutes=-1), "invalid_event", {"offline_minutes"}),
        (
            event(kind="charger_offline", data={"offline_minutes": "5"}),
            "invalid_event",
            {"offline_minutes"},
        ),
        (event(ocpp_id="NOPE-1"), "unknown_charger", {"ocpp_id"}),
        (event(ocpp_id="ACME-CP-0001"), "unknown_charger", {"ocpp_id"}),  # another tenant's
    ],
)
def test_bad_events_are_422_with_a_clear_error_and_store_nothing(
    client, database_url, demo, signed, body, code, fields
):
    response = post(client, body)
    assert response.status_code == 422, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["error"] == code and answer["message"]
    if fields is not None:
        assert set(answer["fields"]) == fields, answer
    assert counts(database_url) == (0, 0, 0)


def test_a_body_over_64_kb_is_refused(client, database_url, demo, signed):
    response = post(client, event(data={"blob": "x" * 70_000}))
    assert response.status_code == 413
    assert counts(database_url) == (0, 0, 0)


def history(database_url, charger_id) -> list[tuple]:
    return query(
        database_url,
        "SELECT kind, connector_no, status, error_code, handled_at IS NOT NULL FROM charger_event "
        "WHERE charger_id = %s ORDER BY id",
        (charger_id,),
    )


def test_each_kind_becomes_charger_history_handled_unless_the_worker_needs_that_row(
    client, database_url, demo, signed
):
    kinds = [
        event(event_id="1", kind="connector_faulted", connector_no=2, error_code=None),
        event(event_id="2", kind="connector_recovered", connector_no=2, error_code=None),
        event(event_id="3", kind="status", status="Charging", connector_no=1, error_code=None),
        event(event_id="4", kind="charger_offline", connector_no=None, error_code=None),
        event(event_id="5", kind="charger_online", connector_no=None, error_code=None),
        event(event_id="6", kind="firmware_status", status="Downloading", connector_no=None),
        event(event_id="7", kind="connector_faulted", connector_no=None, error_code=None),
        event(event_id="8", kind="charger_offline", offline_minutes=30, connector_no=None),
    ]
    for body in kinds:
        assert post(client, body).status_code == 202, body
    assert history(database_url, demo["DEMO-CP-0001"]) == [
        ("status", 2, "Faulted", "OtherError", True),
        ("status", 2, "Available", "NoError", True),
        ("status", 1, "Charging", "NoError", True),
        ("offline", None, None, None, False),  # an offline spell for the worker's check
        ("online", None, None, None, False),  # which this ends
        ("firmware", None, "Downloading", None, True),
        ("status", 0, "Faulted", "OtherError", True),  # the charger as a whole
        ("offline", None, None, None, True),  # its minutes are known: the rules read the row
    ]
    assert connector(database_url, demo["DEMO-CP-0001"], 2) == ("Available", "NoError")
    assert connector(database_url, demo["DEMO-CP-0001"], 1) == ("Charging", "NoError")
    # Presence is the bridge's to say (a socket it holds); the history records the report.
    online = query(
        database_url, "SELECT online FROM charger WHERE id = %s", (demo["DEMO-CP-0001"],)
    )
    assert online == [(False,)]
    unhandled = query(database_url, "SELECT count(*) FROM csms_event WHERE handled_at IS NULL")
    assert unhandled == [(8,)]


def test_an_older_status_does_not_overwrite_a_newer_one(client, database_url, demo, signed):
    now = datetime.now(UTC)
    late = event(
        event_id="late", kind="status", status="Charging", error_code=None, occurred_at=iso(now)
    )
    early = event(event_id="early", occurred_at=iso(now - timedelta(minutes=1)))  # sent later
    assert post(client, late).status_code == 202
    assert post(client, early).status_code == 202
    assert connector(database_url, demo["DEMO-CP-0001"]) == ("Charging", "NoError")
    assert len(history(database_url, demo["DEMO-CP-0001"])) == 2


def test_firmware_status_follows_the_open_job_or_starts_one(client, database_url, demo, signed):
    charger = demo["DEMO-CP-0001"]

    def jobs():
        return query(
            database_url,
            "SELECT location, status FROM firmware_job WHERE charger_id = %s ORDER BY id",
            (charger,),
        )

    def report(n, status, **data):
        body = event(event_id=f"fw-{n}", kind="firmware_status", status=status, data=data or None)
        assert post(client, body).status_code == 202

    report(1, "Idle")  # nothing open: only an event
    assert jobs() == []
    report(2, "Downloading", location="https://fw.example/v2.bin")
    report(3, "Installing")
    assert jobs() == [("https://fw.example/v2.bin", "Installing")]
    report(4, "Installed")
    report(5, "Downloading")  # after the last job ended: a new update
    assert jobs() == [
        ("https://fw.example/v2.bin", "Installed"),
        ("(reported by the external CSMS)", "Downloading"),
    ]
    # A job the desk queued (through the bridge) is followed the same way.
    execute(
        database_url,
        "UPDATE firmware_job SET status = 'InstallationFailed' WHERE charger_id = %s",
        (charger,),
    )
    execute(
        database_url,
        "INSERT INTO firmware_job (tenant_id, charger_id, location, retrieve_at, status) "
        "VALUES (%s, %s, 'https://desk.example/v3.bin', now(), 'pending')",
        (demo["demo"], charger),
    )
    report(6, "DownloadFailed")
    assert jobs()[-1] == ("https://desk.example/v3.bin", "DownloadFailed")
    assert len(jobs()) == 3


def test_uptime_counts_what_the_other_csms_reported(app, client, database_url, demo, signed):
    day = datetime(2026, 11, 20, tzinfo=UTC)
    for n, (kind, hours) in enumerate(
        [("charger_online", 1), ("charger_offline", 6), ("charger_online", 8)]
    ):
        at = (day + timedelta(hours=hours)).isoformat()
        assert (
            post(
                client,
                event(
                    event_id=f"p{n}", kind=kind, connector_no=None, error_code=None, occurred_at=at
                ),
            ).status_code
            == 202
        )
    with app.app_context(), tenant_context(demo["demo"]):
        figures = uptime.charger_availability(demo["DEMO-CP-0001"], day, day + timedelta(days=1))
    assert figures.charger.up_seconds == 21 * 3600
    assert figures.charger.down_seconds == 2 * 3600
    assert figures.charger.unknown_seconds == 3600


def test_reports_from_the_other_csms_open_tickets_through_the_workflow_worker_once(
    app, client, database_url, demo, signed
):
    from cass.services import workflow

    now = datetime.now(UTC)
    quiet = {"connector_no": None, "error_code": None}
    reports = {
        "DEMO-CP-0001": [event(event_id="f1")],  # a fault, by kind
        "DEMO-CP-0002": [  # a fault, as a plain status
            event(event_id="f2", kind="status", status="Faulted", ocpp_id="DEMO-CP-0002",
                  error_code="PowerSwitchFailure", connector_no=2)
        ],
        "DEMO-CP-0003": [
            event(event_id="f3", kind="firmware_status", status="InstallationFailed",
                  ocpp_id="DEMO-CP-0003", **quiet)
        ],
        "DEMO-CP-0004": [  # offline for 20 minutes, said once: the offline check follows it
            event(event_id="f4", kind="charger_offline", ocpp_id="DEMO-CP-0004",
                  occurred_at=iso(now - timedelta(minutes=20)), **quiet)
        ],
        "DEMO-CP-0005": [  # offline, then back: no ticket
            event(event_id="f5", kind="charger_offline", ocpp_id="DEMO-CP-0005",
                  occurred_at=iso(now - timedelta(minutes=20)), **quiet),
            event(event_id="f6", kind="charger_online", ocpp_id="DEMO-CP-0005",
                  occurred_at=iso(now - timedelta(minutes=10)), **quiet),
        ],
        "DEMO-CP-0006": [  # offline for 30 minutes, as the other CSMS counts them
            event(event_id="f7", kind="charger_offline", ocpp_id="DEMO-CP-0006",
                  data={"offline_minutes": 30}, **quiet)
        ],
    }  # fmt: skip
    for bodies in reports.values():
        for body in bodies:
            assert post(client, body).status_code == 202, body
    with app.app_context():
        workflow.drain()
        assert post(client, event(event_id="f1")).get_json()["duplicate"] is True
        workflow.drain()
        with system_context():
            workflow.check_offline()
    workflow_runs = query(
        database_url,
        "SELECT c.ocpp_id, rr.event, t.category FROM rule_run rr "
        "JOIN charger c ON c.id = rr.charger_id JOIN ticket t ON t.id = rr.ticket_id "
        "WHERE rr.matched ORDER BY c.ocpp_id",
    )
    # One matching run and ticket each: no report reached the rules twice.
    assert workflow_runs == [
        ("DEMO-CP-0001", "connector_faulted", "hardware"),
        ("DEMO-CP-0002", "connector_faulted", "hardware"),
        ("DEMO-CP-0003", "firmware_failed", "firmware"),
        ("DEMO-CP-0004", "charger_offline", "connectivity"),
        ("DEMO-CP-0006", "charger_offline", "connectivity"),
    ]
    ticket = query(
        database_url,
        "SELECT t.tenant_id, t.description FROM ticket t JOIN rule_run rr ON rr.ticket_id = t.id "
        "WHERE rr.charger_id = %s",
        (demo["DEMO-CP-0001"],),
    )[0]
    assert ticket[0] == demo["demo"] and "Reported by the operator's CSMS." in ticket[1]
    assert query(database_url, "SELECT count(*) FROM csms_event WHERE handled_at IS NULL") == [(0,)]


# -- the admin page of the secret --------------------------------------------------------------


def shown_secret(html: str) -> str | None:
    match = re.search(r'id="csms-new-secret" value="([^"]+)"', html)
    return match.group(1) if match else None


def test_an_admin_makes_rotates_and_removes_the_secret(app, client, database_url, demo):
    admin = as_user(app, "admin@demo.test")
    page = admin.get("/admin/csms").get_data(as_text=True)
    assert "not set" in page and shown_secret(page) is None
    assert "<code>demo</code>" in page  # the X-CASS-Tenant value
    token = page_token(admin, "/admin/csms")

    made = admin.post("/admin/csms/secret", data={"csrf_token": token})
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    first = shown_secret(made.get_data(as_text=True))
    assert first and len(first) >= 40
    assert post(client, event(event_id="a"), secret=first).status_code == 202
    # Shown once: the page now says it is set, without the secret.
    again = admin.get("/admin/csms").get_data(as_text=True)
    assert first not in again and "Events signed with the current secret are accepted" in again

    rotated = admin.post("/admin/csms/secret", data={"csrf_token": token}, headers=HX)
    html = rotated.get_data(as_text=True)
    assert rotated.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section id="csms-secret"')
    second = shown_secret(html)
    assert second and second != first
    assert post(client, event(event_id="b"), secret=first).status_code == 401
    assert post(client, event(event_id="c"), secret=second).status_code == 202

    removed = admin.post("/admin/csms/secret/delete", data={"csrf_token": token})
    assert removed.status_code == 303 and removed.headers["Location"] == "/admin/csms"
    assert post(client, event(event_id="d"), secret=second).status_code == 401
    fragment = admin.post("/admin/csms/secret/delete", data={"csrf_token": token}, headers=HX)
    assert fragment.status_code == 200 and "not set" in fragment.get_data(as_text=True)

    with app.app_context(), system_context():
        entries = [
            (e.action, e.before, e.after)
            for e in db.session.scalars(
                select(AuditLog).where(AuditLog.entity == "tenant").order_by(AuditLog.id)
            )
        ]
    assert [e[0] for e in entries] == [
        "rotate_csms_secret",
        "rotate_csms_secret",
        "remove_csms_secret",
    ]
    logged = json.dumps(entries)
    assert first not in logged and second not in logged


def test_the_page_fragment_with_htmx_and_csrf_still_guards_it(app, demo):
    admin = as_user(app, "admin@demo.test")
    fragment = admin.get("/admin/csms", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="csms-secret"')
    # The API is exempt from CSRF; the admin page is not.
    assert admin.post("/admin/csms/secret").status_code == 400
    assert query_secret(app, "demo") is None


def query_secret(app, slug):
    from cass.models import Tenant

    with app.app_context(), system_context():
        return db.session.scalar(select(Tenant.csms_secret).where(Tenant.slug == slug))


def test_each_tenant_rotates_only_its_own_secret(app, demo, signed):
    acme = as_user(app, "admin@acme.test")
    token = page_token(acme, "/admin/csms")
    assert acme.post("/admin/csms/secret", data={"csrf_token": token}).status_code == 200
    assert query_secret(app, "demo") == SECRET
    assert query_secret(app, "acme") not in (None, SECRET)
