"""Outbound webhooks: every event type queued by its real writer (services, the SLA sweep, the
OCPP bridge), delivered to a real local HTTP receiver that checks the signature, retried with
backoff, failed at last; the admin pages, with and without htmx; retention."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from ocpp.v16 import call
from sqlalchemy import func, select, text

from cass.extensions import db
from cass.models import AuditLog, User, WebhookDelivery, WebhookEndpoint
from cass.services import tickets, webhooks
from cass.services.sla_sweep import sweep
from cass.services.tickets import NewTicket
from cass.tenancy import system_context, tenant_context
from tests.conftest import as_user, page_token
from tests.ocpp_support import Charger16, open_socket, running_bridge, serving

ALL_EVENTS = [
    "ticket.created",
    "ticket.changed",
    "charger.faulted",
    "charger.recovered",
    "sla.warning",
    "sla.breached",
]


# ---- a real receiver ----


@dataclass
class Received:
    """One request the receiver got, with whether its signature checked out."""

    headers: dict[str, str]
    body: bytes
    signed: bool

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server answering each POST with the next scripted status (the last repeats)."""

    url: str
    secret: str = ""
    answers: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    location: str | None = None
    got: list[Received] = field(default_factory=list)

    def types(self) -> list[str]:
        return [r.headers["X-CASS-Event"] for r in self.got]


def _check(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Verify a request the way the README tells receivers to (independently of our code)."""
    timestamp = headers.get("X-CASS-Timestamp", "")
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(timestamp or 0)) < 300
    return fresh and hmac.compare_digest(
        "sha256=" + mac.hexdigest(), headers.get("X-CASS-Signature", "")
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) in a thread."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = dict(self.headers.items())
            state.got.append(Received(headers, body, _check(state.secret, headers, body)))
            if state.delay:
                time.sleep(state.delay)
            n = len(state.got) - 1
            status = state.answers[min(n, len(state.answers) - 1)]
            self.send_response(status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/cass"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def hook_app(app: Flask) -> Flask:
    """The app, allowed to deliver to 127.0.0.1 (blocked by default), with a short timeout."""
    app.config.update(CASS_WEBHOOK_ALLOW_PRIVATE=True, CASS_WEBHOOK_TIMEOUT=1.0)
    return app


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def add_endpoint(
    app: Flask, tenant_id: int, url: str, events: list[str] | None = None, active: bool = True
) -> tuple[int, str]:
    """Add an endpoint through the service; return its id and secret."""
    with app.app_context(), tenant_context(tenant_id):
        admin = db.session.scalar(
            select(User).where(User.tenant_id == tenant_id, User.role == "admin")
        )
        endpoint, secret = webhooks.create_endpoint(
            admin, url, "test receiver", events or ALL_EVENTS, active
        )
        return endpoint.id, secret


def queued(app: Flask, **where: Any) -> list[WebhookDelivery]:
    """Every delivery (as the owner), oldest first."""
    with app.app_context(), system_context():
        stmt = select(WebhookDelivery).order_by(WebhookDelivery.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(WebhookDelivery, name) == value)
        rows = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return rows


def deliver(app: Flask, now: datetime | None = None) -> int:
    """Run the delivery job once, as the scheduler does."""
    with app.app_context(), system_context():
        return webhooks.deliver_due(now)


def new_ticket(app: Flask, tenant_id: int, title: str = "Cable cut") -> tuple[int, str]:
    """Create a ticket through the service as the agent; return its id and key."""
    with app.app_context(), tenant_context(tenant_id):
        agent = db.session.scalar(
            select(User).where(User.tenant_id == tenant_id, User.role == "call_center")
        )
        ticket = tickets.create(
            agent, NewTicket(title=title, category="damage", priority="P2", channel="phone")
        )
        return ticket.id, tickets.format_key(tickets.tenant_prefix(), ticket.number)


# ---- events queued by their real writers ----


def test_ticket_created_and_changed_are_queued_in_the_writers_transaction(hook_app, demo):
    endpoint_id, _ = add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/x")
    ticket_id, key = new_ticket(hook_app, demo["demo"])
    [created] = queued(hook_app)
    assert (created.event_type, created.status, created.endpoint_id) == (
        "ticket.created",
        "pending",
        endpoint_id,
    )
    body = created.payload
    assert body["id"] == str(created.event_id)
    assert body["type"] == "ticket.created" and body["tenant"] == "demo"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["occurred_at"])
    assert body["data"]["key"] == key and body["data"]["id"] == ticket_id
    assert (body["data"]["status"], body["data"]["priority"]) == ("new", "P2")
    assert body["data"]["title"] == "Cable cut" and body["data"]["changes"] == []

    with hook_app.app_context(), tenant_context(demo["demo"]):
        ticket = tickets.by_key(user("manager@demo.test"), key)
        tickets.transition(
            ticket, user("manager@demo.test"), "assign", None, {"user": user("engineer@demo.test")}
        )
    changed = queued(hook_app)[1:]
    assert [d.event_type for d in changed] == ["ticket.changed"]
    data = changed[0].payload["data"]
    assert data["status"] == "assigned"
    fields = {(c["kind"], c["field"], c["to"]) for c in data["changes"]}
    assert ("status", "status", "assigned") in fields
    # A rolled-back change queues nothing: the outbox is part of the writer's transaction.
    with hook_app.app_context(), tenant_context(demo["demo"]):
        ticket = tickets.by_key(user("manager@demo.test"), key)
        tickets.update_fields(ticket, user("manager@demo.test"), None, {"priority": "P1"})
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 3
    with hook_app.app_context(), tenant_context(demo["demo"]):
        ticket = tickets.by_key(user("manager@demo.test"), key)
        ticket.title = "never saved"
        db.session.execute(
            text(
                "INSERT INTO ticket_event (tenant_id, ticket_id, kind, field, to_value) "
                "VALUES (:t, :id, 'field', 'title', 'never saved')"
            ),
            {"t": demo["demo"], "id": ticket_id},
        )
        db.session.rollback()
    assert len(queued(hook_app)) == 3


def test_web_ticket_creation_is_queued(hook_app, demo):
    add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/x", ["ticket.created"])
    agent = as_user(hook_app, "agent@demo.test")
    token = page_token(agent, "/tickets/new")
    response = agent.post(
        "/tickets/new",
        data={
            "csrf_token": token,
            "title": "Display broken",
            "category": "hardware",
            "priority": "P3",
            "channel": "phone",
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    [delivery] = queued(hook_app)
    assert delivery.event_type == "ticket.created"
    assert delivery.payload["data"]["title"] == "Display broken"


def test_charger_fault_and_recovery_from_the_bridge_are_queued(hook_app, demo, database_url):
    add_endpoint(
        hook_app, demo["demo"], "http://127.0.0.1:9/x", ["charger.faulted", "charger.recovered"]
    )

    async def scenario(url: str) -> None:
        ws = await open_socket(url, "DEMO-CP-0001")
        cp = Charger16("DEMO-CP-0001", ws)
        task = await serving(cp)
        await cp.call(call.BootNotification(charge_point_vendor="ABB", charge_point_model="T"))
        await cp.call(call.StatusNotification(1, "NoError", "Available"))
        await cp.call(call.StatusNotification(1, "GroundFailure", "Faulted", info="RCD"))
        # Repeated: the bridge writes no event for an unchanged status, so nothing is queued.
        await cp.call(call.StatusNotification(1, "GroundFailure", "Faulted", info="RCD"))
        await cp.call(call.StatusNotification(1, "NoError", "Available"))
        await cp.call(call.StatusNotification(2, "NoError", "Charging"))
        await ws.close()
        task.cancel()

    with running_bridge(database_url) as bridge:
        bridge.call(scenario(bridge.url), timeout=30)
    rows = queued(hook_app)
    assert [d.event_type for d in rows] == ["charger.faulted", "charger.recovered"]
    fault, recovery = (d.payload["data"] for d in rows)
    assert fault["ocpp_id"] == "DEMO-CP-0001" and fault["connector"] == 1
    assert (fault["status"], fault["error_code"], fault["info"]) == (
        "Faulted",
        "GroundFailure",
        "RCD",
    )
    assert fault["charger_id"] == demo["DEMO-CP-0001"]
    assert (recovery["status"], recovery["previous_error_code"]) == ("Available", "GroundFailure")
    assert {d.tenant_id for d in rows} == {demo["demo"]}


def test_sla_warning_and_breach_from_the_real_sweep_are_queued(hook_app, demo):
    add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/x", ["sla.warning", "sla.breached"])
    ticket_id, key = new_ticket(hook_app, demo["demo"])
    with hook_app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE sla_clock SET warn_at = now() - interval '1 minute' "
                "WHERE ticket_id = :t AND clock = 'resolution'"
            ),
            {"t": ticket_id},
        )
        db.session.execute(
            text(
                "UPDATE sla_clock SET warn_at = now() - interval '10 minutes', "
                "due_at = now() - interval '1 minute' "
                "WHERE ticket_id = :t AND clock = 'first_response'"
            ),
            {"t": ticket_id},
        )
        db.session.commit()
        sweep(run_rules=False)
    rows = {d.payload["data"]["clock"]: d for d in queued(hook_app)}
    assert rows["resolution"].event_type == "sla.warning"
    assert rows["first_response"].event_type == "sla.breached"
    data = rows["first_response"].payload["data"]
    assert data["ticket"]["key"] == key and data["ticket"]["id"] == ticket_id
    assert data["due_at"].endswith("Z")


def test_a_tenant_gets_only_its_own_events_and_unsubscribed_or_inactive_get_none(hook_app, demo):
    demo_all, _ = add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/a")
    add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/b", ["sla.breached"])
    add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/c", active=False)
    acme_all, _ = add_endpoint(hook_app, demo["acme"], "http://127.0.0.1:9/d")
    new_ticket(hook_app, demo["demo"])
    new_ticket(hook_app, demo["acme"])
    rows = queued(hook_app)
    assert sorted((d.endpoint_id, d.payload["tenant"]) for d in rows) == sorted(
        [(demo_all, "demo"), (acme_all, "acme")]
    )
    # Row security: a tenant sees only its own log.
    with hook_app.app_context(), tenant_context(demo["acme"]):
        seen = db.session.scalars(select(WebhookDelivery.endpoint_id)).all()
    assert seen == [acme_all]


# ---- delivery to a real receiver ----


def test_delivery_is_signed_and_recorded(hook_app, demo, receiver):
    _, receiver.secret = add_endpoint(hook_app, demo["demo"], receiver.url)
    new_ticket(hook_app, demo["demo"])
    assert deliver(hook_app) == 1
    [got] = receiver.got
    assert got.signed
    [delivery] = queued(hook_app)
    assert got.headers["X-CASS-Event"] == "ticket.created"
    assert got.headers["X-CASS-Delivery"] == str(delivery.event_id) == got.payload["id"]
    assert got.headers["Content-Type"] == "application/json"
    assert webhooks.verify(
        receiver.secret, got.headers["X-CASS-Timestamp"], got.body, got.headers["X-CASS-Signature"]
    )
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None and delivery.response_ms is not None
    assert delivery.next_attempt_at is None and delivery.last_error is None
    assert deliver(hook_app) == 0 and len(receiver.got) == 1


def test_a_500_is_retried_with_backoff_then_delivered(hook_app, demo, receiver):
    _, receiver.secret = add_endpoint(hook_app, demo["demo"], receiver.url)
    receiver.answers = [500, 200]
    new_ticket(hook_app, demo["demo"])
    before = datetime.now(UTC)
    deliver(hook_app)
    [delivery] = queued(hook_app)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "HTTP 500 Internal Server Error"
    wait = delivery.next_attempt_at - delivery.last_attempt_at
    assert timedelta(seconds=26) <= wait <= timedelta(seconds=34)
    # Not due yet: nothing is sent.
    assert deliver(hook_app) == 0
    deliver(hook_app, before + timedelta(minutes=1))
    [delivery] = queued(hook_app)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert len(receiver.got) == 2 and all(r.signed for r in receiver.got)
    # The retry is the same event: same id and body, a fresh timestamp and signature.
    assert receiver.got[0].body == receiver.got[1].body
    assert receiver.got[0].headers["X-CASS-Delivery"] == receiver.got[1].headers["X-CASS-Delivery"]


def test_backoff_grows_to_about_a_day():
    waits = [webhooks.backoff(n) for n in range(1, webhooks.MAX_ATTEMPTS)]
    assert all(a < b or b >= webhooks.BACKOFF_CAP * 0.9 for a, b in itertools.pairwise(waits))
    assert timedelta(hours=18) < sum(waits, timedelta()) < timedelta(hours=30)


def test_a_receiver_that_never_takes_it_ends_failed(hook_app, demo, receiver):
    _, receiver.secret = add_endpoint(hook_app, demo["demo"], receiver.url)
    receiver.answers = [503]
    new_ticket(hook_app, demo["demo"])
    now = datetime.now(UTC)
    for _ in range(webhooks.MAX_ATTEMPTS):
        assert deliver(hook_app, now) == 1
        now += timedelta(days=1)
    [delivery] = queued(hook_app)
    assert (delivery.status, delivery.attempts) == ("failed", webhooks.MAX_ATTEMPTS)
    assert delivery.next_attempt_at is None and delivery.last_status_code == 503
    assert deliver(hook_app, now) == 0
    assert len(receiver.got) == webhooks.MAX_ATTEMPTS


def test_a_slow_receiver_times_out_and_is_retried(hook_app, demo, receiver):
    add_endpoint(hook_app, demo["demo"], receiver.url)
    hook_app.config["CASS_WEBHOOK_TIMEOUT"] = 0.3
    receiver.delay = 1.0
    new_ticket(hook_app, demo["demo"])
    deliver(hook_app)
    [delivery] = queued(hook_app)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert "timed out" in delivery.last_error


def test_redirects_are_not_followed(hook_app, demo, receiver):
    add_endpoint(hook_app, demo["demo"], receiver.url)
    receiver.answers = [302]
    receiver.location = receiver.url + "/elsewhere"
    new_ticket(hook_app, demo["demo"])
    deliver(hook_app)
    [delivery] = queued(hook_app)
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert "redirect not followed" in delivery.last_error
    assert len(receiver.got) == 1


def test_private_addresses_are_blocked_unless_allowed(hook_app, demo, receiver):
    add_endpoint(hook_app, demo["demo"], receiver.url)
    hook_app.config["CASS_WEBHOOK_ALLOW_PRIVATE"] = False
    new_ticket(hook_app, demo["demo"])
    deliver(hook_app)
    [delivery] = queued(hook_app)
    assert delivery.status == "pending" and "not allowed" in delivery.last_error
    assert receiver.got == []


def test_a_refused_connection_is_retried(hook_app, demo):
    add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/closed")
    new_ticket(hook_app, demo["demo"])
    deliver(hook_app)
    [delivery] = queued(hook_app)
    assert delivery.status == "pending" and "ConnectionRefused" in delivery.last_error


def test_the_scheduler_job_delivers_under_its_lock(hook_app, demo, receiver):
    from cass.scheduler import _jobs, run_locked

    _, receiver.secret = add_endpoint(hook_app, demo["demo"], receiver.url)
    new_ticket(hook_app, demo["demo"])
    job, trigger = _jobs(hook_app)["deliver_webhooks"]
    assert trigger == {"trigger": "interval", "seconds": 5}
    assert run_locked(hook_app, "deliver_webhooks", job)
    assert [r.signed for r in receiver.got] == [True]


def test_retention_deletes_old_finished_deliveries_only(hook_app, demo):
    add_endpoint(hook_app, demo["demo"], "http://127.0.0.1:9/x")
    for title in ("a", "b", "c"):
        new_ticket(hook_app, demo["demo"], title)
    ids = [d.id for d in queued(hook_app)]
    with hook_app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE webhook_delivery SET created_at = now() - interval '40 days', "
                "status = CASE id WHEN :a THEN 'delivered' WHEN :b THEN 'failed' "
                "ELSE 'pending' END"
            ),
            {"a": ids[0], "b": ids[1]},
        )
        db.session.commit()
        assert webhooks.apply_retention(30) == 2
    assert [d.id for d in queued(hook_app)] == [ids[2]]


# ---- the admin pages ----

HX = {"HX-Request": "true"}


def test_admin_adds_an_endpoint_and_sees_its_secret_once(hook_app, demo, receiver):
    admin = as_user(hook_app, "admin@demo.test")
    assert "Webhooks" in admin.get("/").get_data(as_text=True)
    token = page_token(admin, "/admin/webhooks/new")
    response = admin.post(
        "/admin/webhooks/new",
        data={
            "csrf_token": token,
            "url": receiver.url,
            "description": "Ops board",
            "events": ["ticket.created", "sla.breached"],
            "active": "y",
        },
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    secret = re.search(r'id="webhook-secret" value="(whsec_[^"]+)"', html).group(1)
    assert "<html" in html.lower()
    with hook_app.app_context(), system_context():
        endpoint = db.session.scalar(select(WebhookEndpoint))
        assert (endpoint.url, endpoint.secret, endpoint.description) == (
            receiver.url,
            secret,
            "Ops board",
        )
        assert endpoint.events == ["ticket.created", "sla.breached"] and endpoint.active
        audit_row = db.session.scalar(select(AuditLog).where(AuditLog.entity == "webhook_endpoint"))
        assert audit_row.action == "create" and "secret" not in (audit_row.after or {})
        endpoint_id = endpoint.id
    # Never shown again.
    page = admin.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
    assert secret not in page and receiver.url in page
    assert secret not in admin.get("/admin/webhooks").get_data(as_text=True)


def test_new_endpoint_htmx_answers_the_card_fragment(hook_app, demo):
    admin = as_user(hook_app, "admin@demo.test")
    token = page_token(admin, "/admin/webhooks/new")
    fragment = admin.get("/admin/webhooks/new", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True).lower()
    assert 'id="webhook-form"' in fragment.get_data(as_text=True)
    assert fragment.headers["Vary"].count("HX-Request") >= 1
    response = admin.post(
        "/admin/webhooks/new",
        headers=HX,
        data={"csrf_token": token, "url": "https://hooks.example.com/x", "events": ["ping"]},
    )
    assert response.status_code == 422
    response = admin.post(
        "/admin/webhooks/new",
        headers=HX,
        data={"csrf_token": token, "url": "https://hooks.example.com/x", "events": ["sla.warning"]},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html.lower()
    assert 'id="webhook-endpoint"' in html and "whsec_" in html


@pytest.mark.parametrize(
    "data",
    [
        {"url": "", "events": ["ticket.created"]},
        {"url": "ftp://example.com/x", "events": ["ticket.created"]},
        {"url": "javascript:alert(1)", "events": ["ticket.created"]},
        {"url": "https://user:pw@example.com/x", "events": ["ticket.created"]},
        {"url": "https://example.com:99999/x", "events": ["ticket.created"]},
        {"url": "https://example.com/" + "x" * 600, "events": ["ticket.created"]},
        {"url": "https://example.com/x", "events": []},
        {"url": "https://example.com/x", "events": ["nope"]},
        {"url": "https://example.com/x", "events": ["ticket.created"], "description": "d" * 201},
    ],
)
@pytest.mark.parametrize("hx", [False, True])
def test_bad_input_is_a_422_and_saves_nothing(hook_app, demo, data, hx):
    admin = as_user(hook_app, "admin@demo.test")
    token = page_token(admin, "/admin/webhooks/new")
    response = admin.post(
        "/admin/webhooks/new", headers=HX if hx else {}, data={"csrf_token": token, **data}
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html and ("<html" in html.lower()) is not hx
    with hook_app.app_context(), system_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_edit_changes_an_endpoint_and_bad_input_keeps_it(hook_app, demo):
    endpoint_id, _ = add_endpoint(hook_app, demo["demo"], "https://a.example.com/x")
    admin = as_user(hook_app, "admin@demo.test")
    url = f"/admin/webhooks/{endpoint_id}/edit"
    page = admin.get(url)
    assert page.status_code == 200 and "https://a.example.com/x" in page.get_data(as_text=True)
    fragment = admin.get(url, headers=HX).get_data(as_text=True)
    assert "<html" not in fragment.lower() and 'id="webhook-form"' in fragment
    token = page_token(admin, url)
    bad = admin.post(url, data={"csrf_token": token, "url": "nope", "events": ["sla.warning"]})
    assert bad.status_code == 422
    saved = admin.post(
        url,
        data={"csrf_token": token, "url": "https://b.example.com/y", "events": ["sla.warning"]},
    )
    assert saved.status_code == 303 and saved.headers["Location"].endswith(
        f"/admin/webhooks/{endpoint_id}"
    )
    hx = admin.post(
        url,
        headers=HX,
        data={
            "csrf_token": token,
            "url": "https://c.example.com/z",
            "events": ["sla.warning", "ticket.changed"],
            "active": "y",
        },
    )
    assert hx.status_code == 200 and 'id="webhook-endpoint"' in hx.get_data(as_text=True)
    with hook_app.app_context(), system_context():
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        assert endpoint.url == "https://c.example.com/z" and endpoint.active
        assert endpoint.events == ["ticket.changed", "sla.warning"]


def test_rotate_secret_toggle_and_delete_with_and_without_htmx(hook_app, demo):
    endpoint_id, secret = add_endpoint(hook_app, demo["demo"], "https://a.example.com/x")
    admin = as_user(hook_app, "admin@demo.test")
    base = f"/admin/webhooks/{endpoint_id}"
    token = page_token(admin, base)
    for headers in ({}, HX):
        response = admin.post(base + "/secret", headers=headers, data={"csrf_token": token})
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        assert ("<html" in html.lower()) is not bool(headers)
        new = re.search(r'value="(whsec_[^"]+)"', html).group(1)
        assert new != secret
        secret = new
    assert admin.post(base + "/secret", data={}).status_code in (400, 422)
    with hook_app.app_context(), system_context():
        assert db.session.get(WebhookEndpoint, endpoint_id).secret == secret

    new_ticket(hook_app, demo["demo"])  # a pending delivery, failed by disabling
    off = admin.post(base + "/active", data={"csrf_token": token, "active": "off"})
    assert off.status_code == 303
    [delivery] = queued(hook_app)
    assert (delivery.status, delivery.last_error) == ("failed", "endpoint disabled")
    on = admin.post(base + "/active", headers=HX, data={"csrf_token": token, "active": "on"})
    assert on.status_code == 200 and "Disable" in on.get_data(as_text=True)
    bad = admin.post(base + "/active", headers=HX, data={"csrf_token": token, "active": "x"})
    assert bad.status_code == 422

    other, _ = add_endpoint(hook_app, demo["demo"], "https://b.example.com/x")
    gone = admin.post(f"/admin/webhooks/{other}/delete", headers=HX, data={"csrf_token": token})
    html = gone.get_data(as_text=True)
    assert gone.status_code == 200 and 'id="webhook-endpoints"' in html
    assert "b.example.com" not in html and "<html" not in html.lower()
    gone = admin.post(base + "/delete", data={"csrf_token": token})
    assert gone.status_code == 303 and gone.headers["Location"].endswith("/admin/webhooks")
    with hook_app.app_context(), system_context():
        assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
        actions = db.session.scalars(
            select(AuditLog.action).where(AuditLog.entity == "webhook_endpoint")
        ).all()
        assert actions.count("rotate_secret") == 2 and actions.count("delete") == 2


def test_send_test_pings_the_receiver_and_the_log_shows_it(hook_app, demo, receiver):
    endpoint_id, receiver.secret = add_endpoint(
        hook_app, demo["demo"], receiver.url, ["sla.warning"]
    )
    admin = as_user(hook_app, "admin@demo.test")
    base = f"/admin/webhooks/{endpoint_id}"
    token = page_token(admin, base)
    response = admin.post(base + "/test", headers=HX, data={"csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="webhook-deliveries"' in html
    assert "<html" not in html.lower() and "ping" in html and 'hx-trigger="every 3s"' in html
    assert admin.post(base + "/test", data={"csrf_token": token}).status_code == 303
    assert deliver(hook_app) == 2
    assert receiver.types() == ["ping", "ping"] and all(r.signed for r in receiver.got)
    ping = receiver.got[0].payload
    assert ping["type"] == "ping" and ping["tenant"] == "demo"
    assert ping["data"]["endpoint_id"] == endpoint_id
    log = admin.get(base).get_data(as_text=True)
    assert log.count('badge ok">delivered') == 2 and "every 3s" not in log
    fragment = admin.get(base, headers=HX).get_data(as_text=True)
    assert "<html" not in fragment.lower() and 'id="webhook-deliveries"' in fragment


def test_the_log_pages_older_deliveries_by_keyset(hook_app, demo):
    endpoint_id, _ = add_endpoint(hook_app, demo["demo"], "https://a.example.com/x")
    for n in range(webhooks.PAGE_SIZE + 5):
        new_ticket(hook_app, demo["demo"], f"t{n}")
    ids = [d.id for d in queued(hook_app)]
    admin = as_user(hook_app, "admin@demo.test")
    base = f"/admin/webhooks/{endpoint_id}"
    first = admin.get(base).get_data(as_text=True)
    shown = [int(i) for i in re.findall(r'id="delivery-(\d+)"', first)]
    assert shown == sorted(ids, reverse=True)[: webhooks.PAGE_SIZE]
    older = re.search(r'href="([^"]+before=(\d+))"', first)
    assert int(older.group(2)) == shown[-1]
    rows = admin.get(older.group(1).replace("&amp;", "&"), headers=HX).get_data(as_text=True)
    assert "<html" not in rows.lower() and "<tr" in rows and "<section" not in rows
    assert [int(i) for i in re.findall(r'id="delivery-(\d+)"', rows)] == sorted(ids, reverse=True)[
        webhooks.PAGE_SIZE :
    ]
    assert "Older deliveries" not in rows
    whole = admin.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "<html" in whole.lower() and f'id="delivery-{ids[0]}"' in whole


def test_redeliver_a_failed_delivery(hook_app, demo, receiver):
    endpoint_id, receiver.secret = add_endpoint(hook_app, demo["demo"], receiver.url)
    new_ticket(hook_app, demo["demo"], "one")
    new_ticket(hook_app, demo["demo"], "two")
    first, second = (d.id for d in queued(hook_app))
    with hook_app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE webhook_delivery "
                "SET status = 'failed', attempts = 8, next_attempt_at = NULL"
            )
        )
        db.session.commit()
    admin = as_user(hook_app, "admin@demo.test")
    token = page_token(admin, f"/admin/webhooks/{endpoint_id}")
    assert "Redeliver" in admin.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
    hx = admin.post(
        f"/admin/webhooks/deliveries/{first}/redeliver", headers=HX, data={"csrf_token": token}
    )
    html = hx.get_data(as_text=True)
    assert hx.status_code == 200 and html.lstrip().startswith(f'<tr id="delivery-{first}"')
    again = admin.post(
        f"/admin/webhooks/deliveries/{first}/redeliver", headers=HX, data={"csrf_token": token}
    )
    assert again.status_code == 422 and "Only a failed delivery" in again.get_data(as_text=True)
    plain = admin.post(f"/admin/webhooks/deliveries/{second}/redeliver", data={"csrf_token": token})
    assert plain.status_code == 303
    assert deliver(hook_app) == 2
    assert [d.status for d in queued(hook_app)] == ["delivered", "delivered"]
    assert [d.attempts for d in queued(hook_app)] == [1, 1]
    assert len({r.headers["X-CASS-Delivery"] for r in receiver.got}) == 2


def test_another_tenants_endpoint_and_delivery_are_404(hook_app, demo):
    acme_endpoint, _ = add_endpoint(hook_app, demo["acme"], "https://a.example.com/x")
    new_ticket(hook_app, demo["acme"])
    [delivery] = queued(hook_app)
    admin = as_user(hook_app, "admin@demo.test")
    token = page_token(admin, "/admin/webhooks")
    assert admin.get(f"/admin/webhooks/{acme_endpoint}").status_code == 404
    assert admin.get(f"/admin/webhooks/{acme_endpoint}/edit").status_code == 404
    for action in ("secret", "active", "delete", "test"):
        response = admin.post(
            f"/admin/webhooks/{acme_endpoint}/{action}", data={"csrf_token": token, "active": "off"}
        )
        assert response.status_code == 404
    response = admin.post(
        f"/admin/webhooks/deliveries/{delivery.id}/redeliver", data={"csrf_token": token}
    )
    assert response.status_code == 404
    assert "a.example.com" not in admin.get("/admin/webhooks").get_data(as_text=True)


def test_only_admins_manage_webhooks(hook_app, demo):
    manager = as_user(hook_app, "manager@demo.test")
    assert manager.get("/admin/webhooks").status_code == 403
    assert "Webhooks" not in manager.get("/").get_data(as_text=True)
