"""CSRF on every state-changing request, security headers, error pages (points 5 and 9)."""

from __future__ import annotations

from cass.extensions import db
from cass.models import User
from cass.tenancy import system_context
from tests.conftest import login, page_token


def _agent_active(app, demo) -> bool:
    with app.app_context(), system_context():
        return db.session.get(User, demo["agent@demo.test"]).is_active


def test_post_without_csrf_token_is_400_and_changes_nothing(app, client, demo):
    login(client, "admin@demo.test")
    response = client.post(f"/admin/users/{demo['agent@demo.test']}/deactivate")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "<html" in page and "Nothing was changed" in page
    assert _agent_active(app, demo)


def test_htmx_post_with_wrong_token_header_is_400_fragment(app, client, demo):
    login(client, "admin@demo.test")
    response = client.post(
        f"/admin/users/{demo['agent@demo.test']}/deactivate",
        headers={"HX-Request": "true", "X-CSRFToken": "forged"},
    )
    assert response.status_code == 400
    assert "<html" not in response.get_data(as_text=True)
    assert _agent_active(app, demo)


def test_htmx_post_with_the_body_header_token_works(app, client, demo):
    login(client, "admin@demo.test")
    token = page_token(client, "/admin/users")
    response = client.post(
        f"/admin/users/{demo['agent@demo.test']}/deactivate",
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 200
    assert not _agent_active(app, demo)


def test_body_carries_the_csrf_header_for_htmx(client, demo):
    login(client, "agent@demo.test")
    page = client.get("/").get_data(as_text=True)
    assert '<body hx-boost="true" hx-headers=\'{"X-CSRFToken": "' in page


def test_login_without_token_is_400(client, demo):
    response = client.post("/login", data={"email": "agent@demo.test", "password": "x"})
    assert response.status_code == 400


def test_security_headers_on_every_response(client, demo):
    for path in ("/login", "/healthz", "/nope", "/static/css/cass.css"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "HX-Request" in response.headers["Vary"]


def test_pages_load_nothing_from_elsewhere(client, demo):
    page = client.get("/login").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page
    assert "/static/js/htmx-2.0.11.min.js" in page
    assert "/static/js/htmx-ext-sse-2.2.4.min.js" in page
    assert "<script>" not in page and "style=" not in page


def test_404_is_a_whole_page_or_a_fragment(client, demo):
    login(client, "admin@demo.test")
    full = client.get("/admin/users/999999")
    assert full.status_code == 404 and "<html" in full.get_data(as_text=True)
    fragment = client.get("/admin/users/999999", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 404 and "<html" not in body and "404 · Not found" in body


def test_403_is_a_whole_page_or_a_fragment(client, demo):
    login(client, "agent@demo.test")
    full = client.get("/admin/users")
    assert full.status_code == 403 and "<html" in full.get_data(as_text=True)
    fragment = client.get("/admin/users", headers={"HX-Request": "true"})
    assert fragment.status_code == 403 and "<html" not in fragment.get_data(as_text=True)


def test_500_is_a_page_and_rolls_back(app, demo):
    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    response = client.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.get_data(as_text=True)
    fragment = client.get("/boom", headers={"HX-Request": "true"})
    assert fragment.status_code == 500 and "<html" not in fragment.get_data(as_text=True)


def test_unauthenticated_htmx_request_is_told_to_redirect(client, demo):
    response = client.get("/?q=x", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")


def test_boosted_and_history_restore_requests_get_whole_pages(client, demo):
    login(client, "agent@demo.test")
    for headers in (
        {"HX-Request": "true", "HX-Boosted": "true"},
        {"HX-Request": "true", "HX-History-Restore-Request": "true"},
    ):
        assert "<html" in client.get("/", headers=headers).get_data(as_text=True)
