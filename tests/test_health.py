"""Health, readiness and Prometheus metrics (point 10)."""

from __future__ import annotations

from tests.conftest import login, make_app


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_when_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"


def test_readyz_when_the_database_is_unreachable(database_url):
    app = make_app("postgresql://cass@127.0.0.1:1/cass?connect_timeout=2")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_metrics_count_requests_and_latency_by_endpoint(client, demo):
    login(client, "agent@demo.test")
    client.get("/")
    client.get("/nope")
    body = client.get("/metrics").get_data(as_text=True)
    assert client.get("/metrics").mimetype == "text/plain"
    assert 'cass_http_requests_total{endpoint="main.home",method="GET",status="200"}' in body
    assert 'cass_http_requests_total{endpoint="auth.login",method="POST",status="303"}' in body
    assert 'endpoint="unmatched",method="GET",status="404"' in body
    assert 'cass_http_request_duration_seconds_bucket{endpoint="main.home"' in body


def _end_server_sessions(database_url):
    """End every other session on the test database, as a database restart does."""
    import time

    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        ]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # pg_terminate_backend only signals; a restart is over when the sessions are gone
        # (and their sockets closed), so wait for that before the next request.
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            ).fetchone()[0]
        ):
            time.sleep(0.02)
    return len(pids)


def test_pooled_connections_the_server_ended_are_replaced(app, demo, database_url):
    # No pre-ping round trip per request (cass.pool): the socket tells a dead connection apart.
    client = app.test_client()
    login(client, "agent@demo.test")
    assert client.get("/tickets").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert _end_server_sessions(database_url) >= 1
    assert client.get("/readyz").status_code == 200
    assert client.get("/tickets").status_code == 200  # still signed in: the user loads again
    assert _end_server_sessions(database_url) >= 1
    assert client.get("/tickets").status_code == 200
