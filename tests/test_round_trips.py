"""Fewer round trips per request (cass.tenancy, cass.pool): the transaction is begun, bound to
the tenant and the user read in one message; its ROLLBACK is sent as the request ends and its
answer read at the next checkout; a select may ride in another statement's round trip."""

from __future__ import annotations

import time

import psycopg
import pytest
from flask import g
from psycopg.rows import namedtuple_row
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from cass.extensions import db
from cass.models import User
from cass.pool import ROLLBACK_SENT, alongside, fetch_direct
from cass.tenancy import bind_tenant, open_with, system_context
from tests.conftest import login


def statements_of(app, client, url: str) -> list[str]:
    """Return the statements SQLAlchemy sends while `client` gets `url`."""
    sent: list[str] = []
    with app.app_context():
        engine = db.engine

    def _note(conn, cursor, statement, *args):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", _note)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", _note)
    return sent


def test_a_signed_in_page_sends_no_statement_to_begin_bind_or_read_the_user(app, demo):
    client = app.test_client()
    login(client, "agent@demo.test")
    # /account/password reads nothing but the user: it rides in the opening message.
    assert statements_of(app, client, "/account/password") == []


def test_open_with_begins_binds_and_selects_in_one_go(app, demo):
    with app.test_request_context("/"):
        bind_tenant(demo["demo"])
        rows = open_with(b"SELECT current_setting('app.tenant_id'), current_user, 40 + 2")
        assert rows == [(str(demo["demo"]), app.config["CASS_APP_DB_ROLE"], 42)]
        # The same transaction goes on, bound and under row-level security.
        assert db.session.execute(text("SELECT count(*) FROM tenant")).scalar() == 1
        # Already in a transaction: nothing is run, the caller runs its select itself.
        assert open_with(b"SELECT 1") is None
        db.session.rollback()


def test_open_with_reads_only_the_bound_tenants_rows(app, demo):
    with app.test_request_context("/"):
        bind_tenant(demo["acme"])
        rows = open_with(b"SELECT email FROM app_user ORDER BY email")
        assert rows and all(email.endswith("@acme.test") for (email,) in rows)
        db.session.rollback()
        bind_tenant(None)
        assert open_with(b"SELECT email FROM app_user") == []
        db.session.rollback()


def test_a_failed_opening_leaves_no_transaction_behind(app, demo):
    with app.test_request_context("/"):
        bind_tenant(demo["demo"])
        with pytest.raises(psycopg.DatabaseError):
            open_with(b"SELECT 1 / 0")
        db.session.rollback()
        assert open_with(b"SELECT 7") == [(7,)]
        db.session.rollback()


def test_the_user_is_loaded_as_the_orm_would(app, demo):
    @app.get("/test-user")
    def user_as_loaded() -> dict[str, object]:
        from flask_login import current_user

        user = current_user._get_current_object()
        return {
            "user": isinstance(user, User) and user.email,
            "mapped": db.session.get(User, user.id) is user,  # in the identity map
            "clean": not db.session.dirty and not db.session.new,
            "vendor": user.vendor.name if user.vendor else None,  # relationships still load
        }

    client = app.test_client()
    login(client, "vendor@demo.test")
    assert client.get("/test-user").get_json() == {
        "user": "vendor@demo.test",
        "mapped": True,
        "clean": True,
        "vendor": "Demo Field Services",
    }


def test_a_deactivated_user_is_signed_out_on_the_next_request(app, demo, database_url):
    client = app.test_client()
    login(client, "agent@demo.test")
    assert client.get("/account/password").status_code == 200
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE app_user SET is_active = false WHERE email = 'agent@demo.test'")
    assert client.get("/account/password").status_code == 302


def idle_in_transaction(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_the_rollback_is_sent_as_the_request_ends_and_read_at_the_next_checkout(
    app, demo, database_url
):
    client = app.test_client()
    login(client, "agent@demo.test")
    assert client.get("/tickets").status_code == 200
    with app.app_context():
        records = [rec for rec in db.engine.pool._pool.queue]  # the idle pooled connections
        assert any(rec.info.get(ROLLBACK_SENT) for rec in records)
    # The server has run it: no connection stays in a transaction, holding locks.
    deadline = time.monotonic() + 5
    while idle_in_transaction(database_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert idle_in_transaction(database_url) == 0
    for _ in range(3):  # each checkout reads the answer left for it
        assert client.get("/tickets").status_code == 200
    with app.app_context(), db.engine.connect() as conn:
        assert not conn.connection.info.get(ROLLBACK_SENT)
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_what_a_request_did_not_commit_is_rolled_back(app, demo, database_url):
    @app.get("/test-uncommitted")
    def uncommitted() -> str:
        db.session.execute(
            text("UPDATE app_user SET name = 'Changed' WHERE email = 'agent@demo.test'")
        )
        return "done"

    client = app.test_client()
    login(client, "agent@demo.test")
    assert client.get("/test-uncommitted").get_data(as_text=True) == "done"
    assert client.get("/account/password").status_code == 200
    assert "Changed" not in client.get("/account/password").get_data(as_text=True)
    with psycopg.connect(database_url) as conn:
        names = conn.execute("SELECT name FROM app_user WHERE email = 'agent@demo.test'")
        assert names.fetchone()[0] != "Changed"


def test_a_select_rides_with_the_next_statement(app, demo):
    with app.test_request_context("/"):
        bind_tenant(demo["demo"])
        connection = db.session.connection()
        sql = "SELECT %(a)s::int + 1, current_setting('app.tenant_id')"
        with alongside(connection, sql, {"a": 1}) as rows:
            with db.engine.connect() as other:  # another connection's statement: not this one
                assert other.execute(text("SELECT 4")).scalar() == 4
            assert rows == []
            assert db.session.execute(text("SELECT 5")).scalar() == 5
            assert db.session.execute(text("SELECT 6")).scalar() == 6  # only the first carries
        assert rows == [(2, str(demo["demo"]))]
        with alongside(connection, "SELECT 1", {}) as rows:
            pass
        assert rows == [] and "alongside" not in g
        db.session.rollback()


def test_a_failing_rider_fails_the_statement(app, demo):
    with app.test_request_context("/"):
        bind_tenant(demo["demo"])
        connection = db.session.connection()
        with (
            pytest.raises(Exception, match="division by zero"),
            alongside(connection, "SELECT 1 / 0", {}),
        ):
            db.session.execute(text("SELECT 5")).scalar()
        db.session.rollback()
        with system_context():
            assert db.session.execute(text("SELECT 3")).scalar() == 3


def test_a_direct_fetch_is_in_the_transaction_carries_a_rider_and_is_seen_by_listeners(app, demo):
    seen: list[str] = []
    with app.test_request_context("/"):
        bind_tenant(demo["demo"])
        connection = db.session.connection()

        def _note(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", _note)
        try:
            with alongside(connection, "SELECT %(b)s::int * 10", {"b": 3}) as rows:
                got = fetch_direct(
                    connection,
                    "SELECT %(a)s::int + 1 AS n, current_setting('app.tenant_id') AS tenant",
                    {"a": 1},
                    namedtuple_row,
                )
        finally:
            event.remove(db.engine, "before_cursor_execute", _note)
        # Bound to the tenant (the session's transaction), read by name, the rider in the same go.
        assert [(r.n, r.tenant) for r in got] == [(2, str(demo["demo"]))]
        assert rows == [(30,)]
        assert seen == ["SELECT %(a)s::int + 1 AS n, current_setting('app.tenant_id') AS tenant"]
        db.session.rollback()


def test_a_failing_direct_fetch_raises_as_sqlalchemy_does_and_the_session_goes_on(app, demo):
    with app.test_request_context("/"):
        bind_tenant(demo["demo"])
        connection = db.session.connection()
        with pytest.raises(DBAPIError, match="division by zero"):
            fetch_direct(connection, "SELECT 1 / %(zero)s::int", {"zero": 0})
        db.session.rollback()
        assert db.session.execute(text("SELECT 3")).scalar() == 3
        db.session.rollback()
