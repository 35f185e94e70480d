"""Workflow rules (issue 5, point 5): matching, each action, the event queues, the offline
check, ticket events and CSMS events. Events are written as the bridge writes them (rows in
charger_event) and fed to the rules by the same functions the worker calls."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from cass.extensions import db
from cass.models import Ticket, User, Vendor, WorkflowRule
from cass.services import tickets, workflow
from cass.services.workflow import Facts, mismatch
from cass.tenancy import system_context, tenant_context
from tests.ocpp_support import execute, query

CP = "DEMO-CP-0001"


# -- helpers ----------------------------------------------------------------------------------


def add_event(url, demo, kind, status=None, error_code=None, connector_no=1, ocpp=CP, ago=0):
    """Write a charger_event as the bridge does; return its id."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status, "
            "error_code, info) VALUES (%s, %s, %s, now() - make_interval(mins => %s), %s, %s, "
            "%s, %s) RETURNING id",
            (
                demo["demo"],
                demo[ocpp],
                connector_no if kind == "status" else None,
                ago,
                kind,
                status,
                error_code,
                "RCD tripped" if error_code == "GroundFailure" else None,
            ),
        ).fetchone()[0]


def fault(url, demo, code="GroundFailure", connector_no=1, ocpp=CP):
    return add_event(url, demo, "status", "Faulted", code, connector_no, ocpp)


def recover(url, demo, connector_no=1, ocpp=CP, status="Available"):
    return add_event(url, demo, "status", status, "NoError", connector_no, ocpp)


def drain(app) -> int:
    with app.app_context():
        return workflow.drain()


def auto_tickets(url):
    """Return (id, number, status, title, category, priority, dedup_key) of ocpp-auto tickets."""
    return query(
        url,
        "SELECT id, number, status, title, category, priority, dedup_key FROM ticket "
        "WHERE channel = 'ocpp-auto' AND dedup_key IS NOT NULL ORDER BY id",
    )


def runs(url, event=None):
    """Return (rule name, event, matched, outcome, error, ticket_id) of rule runs, oldest first."""
    sql = (
        "SELECT r.name, rr.event, rr.matched, rr.outcome, rr.error, rr.ticket_id FROM rule_run rr "
        "JOIN workflow_rule r ON r.id = rr.rule_id"
    )
    if event:
        return query(url, sql + " WHERE rr.event = %s ORDER BY rr.id", (event,))
    return query(url, sql + " ORDER BY rr.id")


def rule_id(url, demo, event):
    return query(
        url,
        "SELECT id FROM workflow_rule WHERE tenant_id = %s AND event = %s ORDER BY position",
        (demo["demo"], event),
    )[0][0]


def set_rule(url, rid, **columns):
    """Change a rule's columns directly (conditions and actions as JSON)."""
    import json

    for name, value in columns.items():
        if name in ("conditions", "actions"):
            execute(
                url, f"UPDATE workflow_rule SET {name} = %s WHERE id = %s", (json.dumps(value), rid)
            )
        else:
            execute(url, f"UPDATE workflow_rule SET {name} = %s WHERE id = %s", (value, rid))


def add_rule(app, demo, event, actions, conditions=None, name="Test rule", position=100):
    with app.app_context(), system_context():
        rule = WorkflowRule(
            tenant_id=demo["demo"],
            name=name,
            event=event,
            conditions=conditions or {},
            actions=actions,
            position=position,
        )
        db.session.add(rule)
        db.session.commit()
        return rule.id


def only_rules(url, demo, *keep_events):
    """Disable the demo tenant's default rules except those of `keep_events`."""
    execute(
        url,
        "UPDATE workflow_rule SET enabled = (event = ANY(%s)) WHERE tenant_id = %s",
        (list(keep_events), demo["demo"]),
    )


# -- conditions -------------------------------------------------------------------------------


def facts(**kw):
    base = {"event": "connector_faulted", "tenant_id": 1, "at": datetime.now(UTC)}
    return Facts(**(base | kw))


def test_every_present_condition_must_match():
    f = facts(site_id=7, model="Terra 54", error_code="GroundFailure", status="Faulted")
    assert mismatch({}, f) is None
    assert mismatch({"site_ids": [7, 8], "models": ["terra 54"]}, f) is None
    assert mismatch({"site_ids": [8]}, f)[0] == "site_ids"
    assert mismatch({"models": ["Wallbox"]}, f)[0] == "models"
    assert mismatch({"error_codes": ["GroundFailure"]}, f) is None
    assert mismatch({"error_codes": ["OverCurrentFailure"]}, f)[0] == "error_codes"
    # Empty lists are no constraint; a present condition the event lacks does not hold.
    assert mismatch({"site_ids": [], "models": []}, f) is None
    assert mismatch({"priorities": ["P1"]}, f)[0] == "priorities"
    # Firmware failures are matched on their status.
    fw = facts(event="firmware_failed", status="InstallationFailed")
    assert mismatch({"error_codes": ["InstallationFailed"]}, fw) is None
    off = facts(event="charger_offline", minutes=20)
    assert mismatch({"offline_minutes": 15}, off) is None
    assert mismatch({"offline_minutes": 30}, off)[0] == "offline_minutes"
    ticket = facts(event="ticket_created", priority="P1", category="payment", ticket_status="new")
    assert mismatch({"priorities": ["P1"], "categories": ["payment"]}, ticket) is None
    assert mismatch({"categories": ["hardware"]}, ticket)[0] == "categories"
    assert mismatch({"statuses": ["resolved"]}, ticket)[0] == "statuses"


def test_templates_fill_known_placeholders_only():
    f = facts(ocpp_id="CP-1", connector_no=2, error_code="NoError", status="Faulted")
    assert workflow.fill("{charger}/{connector}: {fault} {nope}", f.values()) == (
        "CP-1/2: Faulted {nope}"
    )
    assert workflow.fill("{charger.__class__}", f.values()) == "{charger.__class__}"


# -- faults, repeats, recovery ------------------------------------------------------------------


def test_a_fault_opens_one_linked_ticket_with_history_and_audit(app, demo, database_url):
    event = fault(database_url, demo)
    assert drain(app) == 1
    [(tid, number, status, title, category, priority, key)] = auto_tickets(database_url)
    charger = demo[CP]
    assert (status, category, priority) == ("new", "hardware", "P2")
    assert key == f"fault:{charger}:1:GroundFailure"
    assert title == f"{CP} connector 1 faulted: GroundFailure"
    [(charger_id, connector_no, site_ok, channel, description, created_by)] = query(
        database_url,
        "SELECT t.charger_id, c.connector_no, t.site_id = ch.site_id, t.channel, t.description, "
        "t.created_by_id FROM ticket t JOIN connector c ON c.id = t.connector_id "
        "JOIN charger ch ON ch.id = t.charger_id WHERE t.id = %s",
        (tid,),
    )
    assert (charger_id, connector_no, site_ok, channel) == (charger, 1, True, "ocpp-auto")
    assert "RCD tripped" in description and created_by is None
    assert query(
        database_url,
        "SELECT kind, to_value, actor_id FROM ticket_event WHERE ticket_id = %s",
        (tid,),
    ) == [("created", "new", None)]
    assert query(
        database_url,
        "SELECT action, actor_id FROM audit_log WHERE entity = 'ticket' AND entity_id = %s",
        (tid,),
    ) == [("create", None)]
    [(_, ev, matched, outcome, error, run_ticket)] = runs(database_url)
    assert (ev, matched, error, run_ticket) == ("connector_faulted", True, None, tid)
    assert outcome == [{"do": "create_ticket", "result": f"opened DEMO-{number}"}]
    assert query(database_url, "SELECT handled_at IS NOT NULL FROM charger_event WHERE id = %s",
                 (event,)) == [(True,)]  # fmt: skip


def test_a_repeated_fault_opens_no_second_ticket_while_the_first_is_open(app, demo, database_url):
    fault(database_url, demo)
    recover(database_url, demo)
    fault(database_url, demo)
    fault(database_url, demo, "OverCurrentFailure", connector_no=2)
    assert drain(app) == 4
    keys = [row[6] for row in auto_tickets(database_url)]
    charger = demo[CP]
    assert keys == [f"fault:{charger}:1:GroundFailure", f"fault:{charger}:2:OverCurrentFailure"]
    repeat = runs(database_url, "connector_faulted")[1]
    assert repeat[2] is True and repeat[3][0]["result"].startswith("not opened: DEMO-")
    # Once the ticket is no longer open, the same fault opens a new one.
    execute(
        database_url, "UPDATE ticket SET status = 'closed' WHERE dedup_key LIKE 'fault:%%:1:%%'"
    )
    recover(database_url, demo)
    fault(database_url, demo)
    drain(app)
    assert len(auto_tickets(database_url)) == 3


def test_recovery_adds_a_system_worklog_to_the_open_fault_ticket(app, demo, database_url):
    fault(database_url, demo)
    recover(database_url, demo)
    drain(app)
    [(tid, *_)] = auto_tickets(database_url)
    [(body, author, public)] = query(
        database_url, "SELECT body, author_id, customer_visible FROM worklog WHERE ticket_id = %s",
        (tid,),
    )  # fmt: skip
    assert body.startswith("Charger recovered at ") and body.endswith(": connector 1 Available")
    assert author is None and public is False
    [recovered] = runs(database_url, "connector_recovered")
    assert recovered[2] is True and recovered[5] == tid


def test_status_changes_that_are_neither_fault_nor_recovery_run_no_rule(app, demo, database_url):
    add_event(database_url, demo, "status", "Preparing", "NoError")
    add_event(database_url, demo, "status", "Charging", "NoError")
    recover(database_url, demo)
    add_event(database_url, demo, "online")
    assert drain(app) == 4
    assert runs(database_url) == []
    assert query(database_url, "SELECT count(*) FROM charger_event WHERE handled_at IS NULL") == [
        (0,)
    ]


def test_a_disabled_rule_does_nothing(app, demo, database_url):
    execute(
        database_url, "UPDATE workflow_rule SET enabled = false WHERE event = 'connector_faulted'"
    )
    fault(database_url, demo)
    drain(app)
    assert auto_tickets(database_url) == [] and runs(database_url) == []


def test_conditions_filter_and_the_miss_is_recorded(app, demo, database_url):
    rid = rule_id(database_url, demo, "connector_faulted")
    [(site, model)] = query(database_url, "SELECT site_id, model FROM charger WHERE id = %s",
                            (demo[CP],))  # fmt: skip
    set_rule(database_url, rid, conditions={"site_ids": [site + 1000]})
    fault(database_url, demo)
    drain(app)
    assert auto_tickets(database_url) == []
    [(_, _, matched, outcome, error, _)] = runs(database_url)
    assert matched is False and error is None and outcome[0]["condition"] == "site_ids"
    set_rule(database_url, rid, conditions={"site_ids": [site], "models": [model.upper()],
                                            "error_codes": ["OverCurrentFailure"]})  # fmt: skip
    fault(database_url, demo, "OverCurrentFailure", connector_no=2)
    drain(app)
    assert len(auto_tickets(database_url)) == 1


def test_firmware_failure_opens_a_firmware_ticket(app, demo, database_url):
    add_event(database_url, demo, "firmware", "Downloading")
    add_event(database_url, demo, "firmware", "InstallationFailed")
    add_event(database_url, demo, "firmware", "InvalidSignature")  # 2.0.1: same open ticket
    drain(app)
    [(_, _, _, title, category, priority, key)] = auto_tickets(database_url)
    assert (category, priority, key) == ("firmware", "P3", f"firmware:{demo[CP]}")
    assert title == f"Firmware update failed on {CP}: InstallationFailed"
    assert [r[2] for r in runs(database_url, "firmware_failed")] == [True, True]


# -- the offline check ------------------------------------------------------------------------


def go_offline(url, demo, minutes_ago, ocpp=CP):
    execute(url, "UPDATE charger SET online = false WHERE id = %s", (demo[ocpp],))
    return add_event(url, demo, "offline", ocpp=ocpp, ago=minutes_ago)


def check(app) -> int:
    with app.app_context(), system_context():
        return workflow.check_offline()


def test_offline_longer_than_n_minutes_opens_a_connectivity_ticket_once(app, demo, database_url):
    spell = go_offline(database_url, demo, 20)
    short = go_offline(database_url, demo, 5, ocpp="DEMO-CP-0002")
    assert check(app) == 1
    [(_, _, _, title, category, priority, key)] = auto_tickets(database_url)
    assert (category, priority, key) == ("connectivity", "P2", f"offline:{demo[CP]}")
    assert title == f"{CP} offline for 20 minutes"
    handled = "SELECT id FROM charger_event WHERE kind = 'offline' AND handled_at IS NULL"
    assert query(database_url, handled) == [(short,)]  # the 15-minute rule is done with it
    assert check(app) == 0 and len(runs(database_url)) == 1
    # The short spell ends before 15 minutes: the charger's return closes it, no ticket.
    execute(database_url, "UPDATE charger SET online = true WHERE id = %s", (demo["DEMO-CP-0002"],))
    add_event(database_url, demo, "online", ocpp="DEMO-CP-0002")
    drain(app)
    assert query(database_url, handled) == [] and len(auto_tickets(database_url)) == 1
    assert spell


def test_each_offline_rule_runs_once_per_spell_when_its_minutes_pass(app, demo, database_url):
    add_rule(app, demo, "charger_offline", [{"do": "set_priority", "priority": "P1"}],
             {"offline_minutes": 60}, name="Escalate after an hour")  # fmt: skip
    spell = go_offline(database_url, demo, 20)
    check(app)
    assert [r[0] for r in runs(database_url)] == ["A charger offline for 15 minutes opens a ticket"]
    assert query(database_url, "SELECT handled_at IS NULL FROM charger_event WHERE id = %s",
                 (spell,)) == [(True,)]  # fmt: skip
    execute(database_url, "UPDATE charger_event SET at = at - interval '1 hour' WHERE id = %s",
            (spell,))  # fmt: skip
    check(app)
    assert [r[0] for r in runs(database_url)][1:] == ["Escalate after an hour"]
    assert [r[5] for r in auto_tickets(database_url)] == ["P1"]
    assert query(database_url, "SELECT handled_at IS NULL FROM charger_event WHERE id = %s",
                 (spell,)) == [(False,)]  # fmt: skip


def test_a_charger_back_online_is_not_reported_offline(app, demo, database_url):
    go_offline(database_url, demo, 30)
    execute(database_url, "UPDATE charger SET online = true WHERE id = %s", (demo[CP],))
    check(app)
    assert runs(database_url) == [] and auto_tickets(database_url) == []


# -- actions ----------------------------------------------------------------------------------


def ticket_of(app, demo, tid):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.get(Ticket, tid)
        db.session.expunge(ticket)
        return ticket


def test_assign_set_priority_notify_and_worklog_after_opening(app, demo, database_url):
    engineer = demo["engineer@demo.test"]
    rid = rule_id(database_url, demo, "connector_faulted")
    set_rule(database_url, rid, actions=[
        {"do": "create_ticket", "category": "hardware", "priority": "P3",
         "title": "{site}: {fault}"},
        {"do": "assign", "user_id": engineer},
        {"do": "set_priority", "priority": "P1"},
        {"do": "add_worklog", "body": "Seen {fault} on {charger}", "customer_visible": True},
        {"do": "notify", "to": "managers"},
    ])  # fmt: skip
    fault(database_url, demo)
    drain(app)
    [(tid, number, status, title, _, priority, _)] = auto_tickets(database_url)
    ticket = ticket_of(app, demo, tid)
    assert (status, priority, ticket.assignee_user_id) == ("assigned", "P1", engineer)
    assert title.endswith(": GroundFailure") and not title.startswith("{site}")
    assert query(database_url, "SELECT body, customer_visible FROM worklog WHERE ticket_id = %s",
                 (tid,)) == [(f"Seen GroundFailure on {CP}", True)]  # fmt: skip
    [(_, _, matched, outcome, error, _)] = runs(database_url)
    assert matched and error is None
    assert [o["do"] for o in outcome] == [
        "create_ticket", "assign", "set_priority", "add_worklog", "notify"
    ]  # fmt: skip
    assert (
        outcome[1]["result"] == f"assigned DEMO-{number} to Erin Engineer"
        or "assigned" in (outcome[1]["result"])
    )
    assert outcome[4]["result"].startswith("recorded, not sent: notify the after-service managers")
    history = query(database_url, "SELECT kind, field, actor_id FROM ticket_event "
                    "WHERE ticket_id = %s ORDER BY id", (tid,))  # fmt: skip
    assert [(k, f) for k, f, _ in history] == [
        ("created", "status"), ("assignment", "assignee"), ("status", "status"),
        ("field", "priority"),
    ]  # fmt: skip
    assert {a for *_, a in history} == {None}


def test_assign_to_the_chargers_vendor_or_a_vendor(app, demo, database_url):
    vendor = demo["vendor:Demo Field Services"]
    rid = rule_id(database_url, demo, "connector_faulted")
    set_rule(database_url, rid, actions=[
        {"do": "create_ticket", "category": "hardware", "priority": "P2"},
        {"do": "assign", "to": "charger_vendor"},
    ])  # fmt: skip
    fault(database_url, demo)
    drain(app)
    # The charger has no vendor: the failure is recorded, the ticket stays as opened.
    [(_, _, matched, outcome, error, _)] = runs(database_url)
    assert matched and error == "assign: the charger has no vendor"
    assert outcome[1]["result"] == "failed: the charger has no vendor"
    assert auto_tickets(database_url)[0][2] == "new"
    execute(database_url, "UPDATE charger SET vendor_id = %s WHERE id = %s", (vendor, demo[CP]))
    fault(database_url, demo, connector_no=2)
    drain(app)
    tid = auto_tickets(database_url)[1][0]
    assert ticket_of(app, demo, tid).assignee_vendor_id == vendor


def test_a_failing_action_is_recorded_and_stops_the_rest(app, demo, database_url):
    rid = rule_id(database_url, demo, "connector_faulted")
    set_rule(database_url, rid, actions=[
        {"do": "create_ticket", "category": "hardware", "priority": "P2"},
        {"do": "assign", "user_id": demo["viewer@demo.test"]},
        {"do": "set_priority", "priority": "P1"},
    ])  # fmt: skip
    fault(database_url, demo)
    fault(database_url, demo, connector_no=2)
    assert drain(app) == 2  # the worker went on
    first = runs(database_url)[0]
    assert first[4] == "assign: That user cannot work tickets."
    assert first[3][2] == {"do": "set_priority", "result": "not run: an earlier action failed"}
    assert [t[5] for t in auto_tickets(database_url)] == ["P2", "P2"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([], "cancelled"),
        (["assign"], "cancelled"),
        (["assign", "start"], "resolved"),
        (["assign", "start", "hold"], "resolved"),
        (["assign", "start", "resolve", "reopen"], "resolved"),
    ],
)
def test_resolve_ticket_closes_the_loop_from_any_open_status(app, demo, database_url, path,
                                                              expected):  # fmt: skip
    recovered = rule_id(database_url, demo, "connector_recovered")
    set_rule(database_url, recovered, actions=[{"do": "add_worklog"}, {"do": "resolve_ticket"}])
    fault(database_url, demo)
    drain(app)
    [(tid, *_)] = auto_tickets(database_url)
    fields = {
        "assign": {"user": None},
        "hold": {"hold_reason": "waiting_parts"},
        "resolve": {"resolution_note": "Fixed"},
        "reopen": {"note": "Again"},
    }
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.get(Ticket, tid)
        manager = db.session.get(User, demo["manager@demo.test"])
        for name in path:
            extra = dict(fields.get(name, {}))
            if name == "assign":
                extra["user"] = db.session.get(User, demo["engineer@demo.test"])
            tickets.transition(ticket, manager, name, ticket.version, extra)
    recover(database_url, demo)
    drain(app)
    [(status, note, reason)] = query(
        database_url, "SELECT status, resolution_note, cancel_reason FROM ticket WHERE id = %s",
        (tid,),
    )  # fmt: skip
    assert status == expected
    text = note if expected == "resolved" else reason
    assert text.startswith(f"Resolved automatically: {CP} reported Available at ")
    outcome = runs(database_url, "connector_recovered")[0][3]
    assert outcome[1]["result"].startswith(expected)


def test_concurrent_faults_of_one_key_open_one_ticket(app, demo, database_url):
    events = [fault(database_url, demo) for _ in range(2)]
    rows = query(database_url, "SELECT id, tenant_id, charger_id, connector_no, at, kind, "
                 "status, error_code, info, NULL AS vendor_error_code FROM charger_event "
                 "WHERE id = ANY(%s)", (events,))  # fmt: skip
    names = ("id", "tenant_id", "charger_id", "connector_no", "at", "kind", "status",
             "error_code", "info", "vendor_error_code")  # fmt: skip
    barrier = threading.Barrier(2)
    errors = []

    def feed(row):
        try:
            with app.app_context(), tenant_context(demo["demo"]):
                f = workflow.facts_for_charger_event(dict(zip(names, row, strict=True)))
                barrier.wait(5)
                workflow.evaluate(f)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(row,)) for row in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(auto_tickets(database_url)) == 1
    results = sorted(r[3][0]["result"].split(" ")[0] for r in runs(database_url))
    assert results == ["not", "opened"]


# -- ticket events ----------------------------------------------------------------------------


def new_ticket(app, demo, category="payment", priority="P3"):
    with app.app_context(), tenant_context(demo["demo"]):
        agent = db.session.get(User, demo["agent@demo.test"])
        ticket = tickets.create(
            agent,
            tickets.NewTicket(title="Card refused", category=category, priority=priority,
                              channel="phone"),
        )  # fmt: skip
        return ticket.id


def test_ticket_created_rules_run_from_the_ticket_service(app, demo, database_url):
    vendor = demo["vendor:Demo Field Services"]
    add_rule(app, demo, "ticket_created", [{"do": "assign", "vendor_id": vendor}],
             {"categories": ["payment"]}, name="Payment goes to the vendor")  # fmt: skip
    paid = new_ticket(app, demo)
    other = new_ticket(app, demo, category="damage")
    assert ticket_of(app, demo, paid).assignee_vendor_id == vendor
    assert ticket_of(app, demo, paid).status == "assigned"
    assert ticket_of(app, demo, other).assignee_vendor_id is None
    assert [(r[2], r[5]) for r in runs(database_url)] == [(True, paid), (False, other)]


def test_status_changed_rules_and_a_rule_never_feeds_itself(app, demo, database_url):
    # Cancelling moves the ticket again: the same rule hears that and must stay quiet.
    add_rule(app, demo, "ticket_status_changed", [{"do": "resolve_ticket", "note": "No need"}],
             name="Loop")  # fmt: skip
    add_rule(app, demo, "ticket_status_changed", [{"do": "add_worklog", "body": "Now {status}"}],
             {"statuses": ["assigned"]}, name="Note", position=101)  # fmt: skip
    tid = new_ticket(app, demo)
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.get(Ticket, tid)
        manager = db.session.get(User, demo["manager@demo.test"])
        vendor = db.session.get(Vendor, demo["vendor:Demo Field Services"])
        tickets.transition(ticket, manager, "assign", ticket.version, {"vendor": vendor})
    ticket = ticket_of(app, demo, tid)
    assert ticket.status == "cancelled"
    outcomes = [(r[0], r[2], r[3][0]["result"]) for r in runs(database_url)]
    assert outcomes == [
        # Heard "cancelled" while cancelling: not again.
        ("Loop", False, "not run: this rule's own action caused the event"),
        ("Note", False, "status cancelled is not one of the rule's"),
        ("Loop", True, f"cancelled DEMO-{ticket.number} (work had not started)"),
        # The ticket was cancelled before this rule's turn: nothing left to write on.
        ("Note", True, "nothing to do: no open ticket"),
    ]


# -- CSMS events ------------------------------------------------------------------------------


def add_csms(url, demo, kind, n, **payload):
    import json

    body = {"event_id": f"e-{n}", "kind": kind, "ocpp_id": CP, **payload}
    with psycopg.connect(url) as conn:
        return conn.execute(
            "INSERT INTO csms_event (tenant_id, event_id, kind, ocpp_id, charger_id, occurred_at, "
            "payload) VALUES (%s, %s, %s, %s, %s, now(), %s) RETURNING id",
            (demo["demo"], f"e-{n}", kind, CP, demo[CP], json.dumps(body)),
        ).fetchone()[0]


def test_csms_events_feed_the_same_rules_once(app, demo, database_url):
    first = add_csms(database_url, demo, "connector_faulted", 1, connector_no=2,
                     error_code="GroundFailure")  # fmt: skip
    with app.app_context(), tenant_context(demo["demo"]):
        run_ids = workflow.handle_csms_event(first)
        assert run_ids and workflow.handle_csms_event(first) is None
    [(_, _, _, _, _, _, key)] = auto_tickets(database_url)
    assert key == f"fault:{demo[CP]}:2:GroundFailure"
    add_csms(database_url, demo, "firmware_status", 2, status="DownloadFailed")
    add_csms(database_url, demo, "charger_online", 3)
    add_csms(database_url, demo, "status", 4, connector_no=3, status="Faulted",
             error_code="OtherError")  # fmt: skip
    assert drain(app) == 3
    assert [t[4] for t in auto_tickets(database_url)] == ["hardware", "firmware", "hardware"]
    assert query(database_url, "SELECT count(*) FROM csms_event WHERE handled_at IS NULL") == [(0,)]
    assert {r[1] for r in runs(database_url)} == {"connector_faulted", "firmware_failed"}
    assert query(database_url, "SELECT count(*) FROM rule_run WHERE csms_event_id IS NOT NULL") == [
        (3,)
    ]


def test_the_scheduler_runs_the_offline_check_under_its_lock(app, demo, database_url):
    from cass.scheduler import _jobs, run_locked

    job, trigger = _jobs(app)["workflow_offline_check"]
    assert trigger == {"trigger": "interval", "seconds": 30}
    go_offline(database_url, demo, 16)
    assert run_locked(app, "workflow_offline_check", job)
    assert len(auto_tickets(database_url)) == 1


def test_old_times_are_in_utc_in_worklogs():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(0)
    assert facts(at=at).values()["time"] == "2026-01-02 03:04:05 UTC"


def test_a_poison_event_is_passed_but_a_database_failure_is_retried(
    app, demo, database_url, monkeypatch
):
    from sqlalchemy.exc import OperationalError

    event = fault(database_url, demo)

    def broken(row):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(workflow, "facts_for_charger_event", broken)
    with app.app_context(), pytest.raises(OperationalError):
        workflow.process_next_charger_event()
    pending = "SELECT handled_at IS NULL FROM charger_event WHERE id = %s"
    assert query(database_url, pending, (event,)) == [(True,)]

    def poison(row):
        raise ValueError("cannot read this event")

    monkeypatch.setattr(workflow, "facts_for_charger_event", poison)
    assert drain(app) == 1
    assert query(database_url, pending, (event,)) == [(False,)]
    assert auto_tickets(database_url) == []
