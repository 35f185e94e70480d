"""Sign-in, lockout, remember-me, logout, cookies and password changes (issue 2, point 4)."""

from __future__ import annotations

from sqlalchemy import func, select

from cass.extensions import db
from cass.models import LoginAttempt, User
from cass.services.auth import INVALID
from cass.tenancy import system_context
from tests.conftest import DEMO_PASSWORD, csrf_from, login, make_app, page_token


def test_sign_in_redirects_home_and_records_the_attempt(app, client, demo):
    response = login(client, "Agent@Demo.test ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    with app.app_context(), system_context():
        attempt = db.session.scalars(select(LoginAttempt)).one()
        assert attempt.succeeded and attempt.email == "agent@demo.test"
        assert db.session.get(User, demo["agent@demo.test"]).last_login_at is not None


def test_unknown_user_and_wrong_password_get_the_same_message(client, demo):
    unknown = login(client, "nobody@demo.test")
    wrong = login(client, "agent@demo.test", "wrong-password")
    assert unknown.status_code == wrong.status_code == 422
    assert INVALID in unknown.get_data(as_text=True)
    assert INVALID in wrong.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_empty_and_overlong_login_forms_are_422(client, demo):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    empty = client.post("/login", data={"csrf_token": token})
    assert empty.status_code == 422
    assert "This field is required." in empty.get_data(as_text=True)
    long = client.post(
        "/login", data={"csrf_token": token, "email": "a" * 300 + "@x.test", "password": "x"}
    )
    assert long.status_code == 422


def test_lockout_per_account_blocks_even_the_right_password(app, client, demo):
    for _ in range(10):
        assert login(client, "agent@demo.test", "wrong").status_code == 422
    response = login(client, "agent@demo.test", DEMO_PASSWORD)
    assert response.status_code == 422
    assert "Too many failed sign-in attempts. Try again in 15 minutes." in response.get_data(
        as_text=True
    )
    # Another account from another address is not affected.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.4"
    assert login(other, "manager@demo.test").status_code == 303
    # The locked account stays locked from that other address too.
    third = app.test_client()
    third.environ_base["REMOTE_ADDR"] = "198.51.100.5"
    assert login(third, "agent@demo.test").status_code == 422


def test_lockout_per_client_address_spans_accounts(app, demo):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    for n in range(10):
        assert login(client, f"guess{n}@demo.test", "wrong").status_code == 422
    blocked = login(client, "manager@demo.test")
    assert "Too many failed sign-in attempts" in blocked.get_data(as_text=True)
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.8"
    assert login(elsewhere, "manager@demo.test").status_code == 303


def test_failures_older_than_the_window_do_not_count(app, client, demo):
    for _ in range(10):
        login(client, "agent@demo.test", "wrong")
    with app.app_context(), system_context():
        db.session.execute(
            LoginAttempt.__table__.update().values(
                at=func.now() - func.make_interval(0, 0, 0, 0, 0, 16)
            )
        )
        db.session.commit()
    assert login(client, "agent@demo.test").status_code == 303


def test_deactivated_user_cannot_sign_in(app, client, demo):
    with app.app_context(), system_context():
        db.session.get(User, demo["agent@demo.test"]).is_active_flag = False
        db.session.commit()
    response = login(client, "agent@demo.test")
    assert response.status_code == 422
    assert INVALID in response.get_data(as_text=True)


def test_deactivated_users_old_session_is_signed_out_on_next_request(app, client, demo):
    assert login(client, "agent@demo.test").status_code == 303
    assert client.get("/").status_code == 200
    with app.app_context(), system_context():
        db.session.get(User, demo["agent@demo.test"]).is_active_flag = False
        db.session.commit()
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_session_cookie_is_httponly_and_samesite_lax(client, demo):
    response = login(client, "agent@demo.test")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_cookies_are_secure_when_served_over_https(database_url, demo):
    app = make_app(database_url, SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    client = app.test_client()
    response = login(client, "agent@demo.test", remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    assert all("Secure" in c for c in cookies if c.startswith(("session=", "remember_token=")))


def test_remember_me_keeps_the_user_signed_in_after_the_session_ends(app, client, demo):
    response = login(client, "agent@demo.test", remember="y")
    remember = [
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember_token=")
    ]
    assert remember and "HttpOnly" in remember[0]
    client.delete_cookie("session")
    assert client.get("/").status_code == 200


def test_without_remember_me_no_remember_cookie(client, demo):
    response = login(client, "agent@demo.test")
    assert not [
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember_token=")
    ]


def test_logout_signs_out(client, demo):
    login(client, "agent@demo.test")
    token = page_token(client)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert client.get("/").status_code == 302


def test_logout_is_post_only(client, demo):
    login(client, "agent@demo.test")
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


def test_next_parameter_only_goes_to_local_paths(client, demo):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    data = {"csrf_token": token, "email": "admin@demo.test", "password": DEMO_PASSWORD}
    response = client.post("/login?next=//evil.test/x", data=data)
    assert response.headers["Location"] == "/"
    client.post("/logout", data={"csrf_token": page_token(client)})
    response = client.post("/login?next=/admin/users", data=data)
    assert response.headers["Location"] == "/admin/users"


def test_change_password_signs_out_other_sessions(app, demo):
    mine, other = app.test_client(), app.test_client()
    login(mine, "engineer@demo.test")
    login(other, "engineer@demo.test")
    token = page_token(mine, "/account/password")
    response = mine.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current": DEMO_PASSWORD,
            "new": "a-new-password-1",
            "confirm": "a-new-password-1",
        },
    )
    assert response.status_code == 303
    assert mine.get("/").status_code == 200
    assert other.get("/").status_code == 302
    fresh = app.test_client()
    assert login(fresh, "engineer@demo.test", DEMO_PASSWORD).status_code == 422
    assert login(fresh, "engineer@demo.test", "a-new-password-1").status_code == 303


def test_change_password_bad_input_is_422_and_changes_nothing(app, client, demo):
    login(client, "engineer@demo.test")
    token = page_token(client, "/account/password")
    cases = [
        (
            {"current": "wrong", "new": "a-new-password-1", "confirm": "a-new-password-1"},
            "Your current password is not correct.",
        ),
        (
            {"current": DEMO_PASSWORD, "new": "short", "confirm": "short"},
            "Field must be between 10 and 200 characters long.",
        ),
        (
            {"current": DEMO_PASSWORD, "new": "a-new-password-1", "confirm": "different-pass-2"},
            "The two new passwords differ.",
        ),
        ({}, "This field is required."),
    ]
    for data, message in cases:
        response = client.post("/account/password", data={"csrf_token": token, **data})
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    fresh = app.test_client()
    assert login(fresh, "engineer@demo.test").status_code == 303
