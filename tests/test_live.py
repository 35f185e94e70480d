"""Live updates: NOTIFY on commit, the per-process broker, and /events over a real HTTP server."""

from __future__ import annotations

import codecs
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests
from flask import Flask

from cass.extensions import db
from cass.live import (
    APPLICATION_NAME,
    CHANNEL,
    MAX_PAYLOAD_BYTES,
    Broker,
    Subscription,
    build_payload,
    get_broker,
    notify,
    notify_many,
    unpack,
)
from cass.tenancy import tenant_context
from tests.conftest import DEMO_PASSWORD, csrf_from, serve

WAIT = 2.0  # the promise: a committed event reaches its listeners within this


@pytest.fixture
def broker(app: Flask) -> Iterator[Broker]:
    """The app's broker, stopped (its connection closed, its streams ended) after the test."""
    live = get_broker(app)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def live_server(app: Flask, broker: Broker) -> Iterator[str]:
    """Serve `app` from a background thread (a real socket); return its base URL."""
    app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5  # dead clients are noticed quickly in tests
    with serve(app) as url:
        yield url


def next_event(sub: Subscription, kind: str, timeout: float = WAIT) -> dict[str, Any] | None:
    """Return the first event of `kind` that `sub` gets within `timeout`, skipping others."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        event = sub.get(timeout=remaining)
        if event is not None and event["kind"] == kind:
            return event
    return None


def send(url: str, tenant_id: int, kind: str, ident: str | int, **extra: Any) -> None:
    """Commit one live event from a connection of its own (as another process would)."""
    with psycopg.connect(url) as conn:  # the block commits on exit
        notify(conn, tenant_id, kind, ident, **extra)


class SSEReader:
    """Read a text/event-stream response in a thread, one parsed message per queue item."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.messages: queue.Queue[dict[str, str] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, name="sse-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")()
        buffer = ""
        try:
            # One byte at a time: anything larger would wait for bytes that are not coming.
            for chunk in self.response.iter_content(chunk_size=1):
                buffer += decoder.decode(chunk)
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self.messages.put(self._parse(block))
        except (requests.RequestException, OSError, AttributeError):
            pass  # closed by the test, or by the server
        finally:
            self.messages.put(None)

    @staticmethod
    def _parse(block: str) -> dict[str, str]:
        message: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            name = name or "comment"
            message[name] = message.get(name, "") + value.removeprefix(" ")
        return message

    def next(self, timeout: float = WAIT) -> dict[str, str] | None:
        """Return the next message, or None at the end of the stream; fail after `timeout`."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no SSE message within {timeout} s")

    def next_event(self, timeout: float = WAIT) -> dict[str, str] | None:
        """Return the next message that has an `event:`, skipping comments and bare ids."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if message is None or "event" in message:
                return message

    def wait_until(self, predicate: Callable[[dict[str, str]], bool], timeout: float) -> None:
        """Consume messages until one matches `predicate`; fail on the end or after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            assert message is not None, "the stream ended"
            if predicate(message):
                return

    def close(self) -> None:
        """Drop the connection and wait for the reader thread."""
        self.response.close()
        self.thread.join(5)


@pytest.fixture
def streams() -> Iterator[list[SSEReader]]:
    """Collect the test's open streams and close them all afterwards."""
    opened: list[SSEReader] = []
    try:
        yield opened
    finally:
        for reader in opened:
            reader.close()


def signed_in(base: str, email: str) -> requests.Session:
    """Return a requests session signed in through the real form."""
    session = requests.Session()
    token = csrf_from(session.get(f"{base}/login", timeout=10).text)
    response = session.post(
        f"{base}/login",
        data={"csrf_token": token, "email": email, "password": DEMO_PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303
    return session


def open_stream(
    session: requests.Session, base: str, streams: list[SSEReader], **headers: str
) -> SSEReader:
    """Open /events and wait for its opening message (after which events are delivered)."""
    response = session.get(f"{base}/events", stream=True, timeout=(5, 10), headers=headers)
    assert response.status_code == 200
    reader = SSEReader(response)
    streams.append(reader)
    opening = reader.next(5)
    assert opening is not None and opening.get("comment") == "connected", opening
    return reader


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- notify and the broker ---------------------------------------------------------------


def test_committed_events_reach_their_tenant_only(app, demo, broker):
    mine, other = broker.subscribe(demo["demo"]), broker.subscribe(demo["acme"])
    assert broker.wait_listening(5)
    with app.app_context(), tenant_context(demo["demo"]):
        notify(db.session, demo["demo"], "ticket", 41, status="cancelled")
        db.session.rollback()
        notify(db.session, demo["demo"], "ticket", 42, status="assigned")
        db.session.commit()

    event = next_event(mine, "ticket")
    # NOTIFYs arrive in commit order, so the rolled-back one (sent first) would be seen first.
    assert event == {"t": demo["demo"], "kind": "ticket", "id": 42, "status": "assigned"}
    assert mine.get(timeout=0.5) is None
    assert other.get(timeout=0.5) is None


def test_an_oversized_event_is_trimmed_not_refused(app, demo, broker):
    sub = broker.subscribe(demo["demo"])
    assert broker.wait_listening(5)
    with app.app_context(), tenant_context(demo["demo"]):
        notify(db.session, demo["demo"], "ticket", "DEMO-1", status="new", note="x" * 20_000)
        db.session.commit()  # a payload of 8000 bytes or more would make Postgres refuse this

    event = next_event(sub, "ticket")
    assert event == {
        "t": demo["demo"],
        "kind": "ticket",
        "id": "DEMO-1",
        "status": "new",
        "truncated": ["note"],
    }
    payload = build_payload(1, "ticket", 1, {f"k{i}": "v" * 500 for i in range(40)})
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert json.loads(payload)["truncated"]


def test_a_bad_kind_is_refused_before_anything_is_sent(app):
    with app.app_context(), pytest.raises(ValueError):
        notify(db.session, 1, "ticket\ndata: forged", 1)


def test_malformed_notifications_are_ignored(demo, database_url, broker):
    sub = broker.subscribe(demo["demo"])
    assert broker.wait_listening(5)
    t = demo["demo"]
    with psycopg.connect(database_url) as conn:
        for payload in ("not json", f'{{"t": {t}, "id": 1}}', f'{{"t": {t}, "kind": "a\\nb"}}'):
            conn.execute("SELECT pg_notify('cass_live', %s)", (payload,))
        notify(conn, t, "ticket", 2)

    assert sub.get(timeout=WAIT) == {"t": t, "kind": "ticket", "id": 2}


def test_many_events_go_packed_in_few_notifications(app, demo, database_url, broker):
    """A sweep's thousands of events: a few notifications a tenant, unpacked by the broker."""
    t, other = demo["demo"], demo["acme"]
    events = [(t, f"ticket-{n}", n) for n in range(3000)] + [(other, "ticket", 7)]
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        with app.app_context(), tenant_context(t):
            notify_many(db.session, events)
            db.session.commit()
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=100)]
    assert 3 <= len(payloads) <= 12, len(payloads)  # about 18 bytes an event, 7,900 a payload
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    heard = [event for p in payloads for event in unpack(json.loads(p))]
    assert heard == [{"t": tenant, "kind": kind, "id": ident} for tenant, kind, ident in events]

    # The broker hands them out one by one; a malformed item in a pack is dropped alone.
    sub = broker.subscribe(t)
    assert broker.wait_listening(5)
    with psycopg.connect(database_url) as conn:
        packed = {"t": t, "many": [["ticket", 1], ["bad kind", 2], "junk", ["ticket-3", 3]]}
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(packed)))
    assert [sub.get(timeout=WAIT), sub.get(timeout=WAIT)] == [
        {"t": t, "kind": "ticket", "id": 1},
        {"t": t, "kind": "ticket-3", "id": 3},
    ]
    assert sub.get(timeout=0.5) is None
    with app.app_context(), pytest.raises(ValueError):
        notify_many(db.session, [(t, "ticket\ndata: forged", 1)])


def test_a_slow_subscriber_loses_the_oldest_events_and_is_told_to_resync():
    sub = Subscription(tenant_id=1, maxsize=3)
    for ident in range(5):
        sub.put({"t": 1, "kind": "ticket", "id": ident})

    assert sub.get(timeout=0) == {"kind": "resync"}
    assert [sub.get(timeout=0)["id"] for _ in range(3)] == [2, 3, 4]
    assert sub.get(timeout=0) is None
    assert sub.dropped == 2


def test_the_broker_reconnects_and_asks_for_a_resync(app, demo, database_url, broker):
    sub = broker.subscribe(demo["demo"])
    assert broker.wait_listening(5)
    old_pid = broker.backend_pid
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Found by its application_name, as an operator would; other tests' apps may still
        # have theirs open, so the broker's own pid picks ours.
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database() AND pid = %s",
            (APPLICATION_NAME, old_pid),
        ).fetchall()
        assert killed == [(True,)]

        assert wait_for(lambda: broker.connections == 2 and broker.listening, 5)
        new_pid = broker.backend_pid
        assert new_pid is not None and new_pid != old_pid
        name = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (new_pid,)
        ).fetchone()
        assert name == (APPLICATION_NAME,)

    assert next_event(sub, "resync") == {"kind": "resync"}
    send(database_url, demo["demo"], "ticket", 7)
    assert next_event(sub, "ticket", timeout=5) == {"t": demo["demo"], "kind": "ticket", "id": 7}


def test_an_idle_broker_lets_its_connection_go_and_comes_back(demo, database_url):
    broker = Broker(database_url, idle_seconds=0.3)
    try:
        sub = broker.subscribe(demo["demo"])
        assert broker.wait_listening(5)
        pid = broker.backend_pid
        broker.unsubscribe(sub)

        def backend_gone() -> bool:
            with psycopg.connect(database_url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
            return row == (0,)

        # Nobody listens in this process, so no connection is held for nobody.
        assert wait_for(lambda: backend_gone() and not broker.listening, 5)

        sub = broker.subscribe(demo["demo"])
        assert broker.wait_listening(5)
        send(database_url, demo["demo"], "ticket", 3)
        # A planned close loses nothing anyone was promised: no resync, just the event.
        assert sub.get(timeout=WAIT) == {"t": demo["demo"], "kind": "ticket", "id": 3}
    finally:
        broker.stop()


# -- GET /events over HTTP ---------------------------------------------------------------


def test_the_stream_carries_the_users_tenant_events(app, demo, database_url, live_server, streams):
    session = signed_in(live_server, "agent@demo.test")
    reader = open_stream(session, live_server, streams)
    headers = reader.response.headers
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"

    send(database_url, demo["acme"], "ticket", 99, status="new")
    send(database_url, demo["demo"], "ticket", 1042, status="assigned")

    # Committed in this order, so the other tenant's event would have come first.
    message = reader.next_event(WAIT)
    assert message is not None and message["event"] == "ticket"
    assert json.loads(message["data"]) == {
        "t": demo["demo"],
        "kind": "ticket",
        "id": 1042,
        "status": "assigned",
    }
    # Idle streams carry heartbeats (0.5 s in these tests, 15 s by default).
    reader.wait_until(lambda m: m.get("comment") == "ping", 3)


def test_a_returning_client_is_told_to_resync(app, demo, live_server, streams):
    session = signed_in(live_server, "viewer@demo.test")
    reader = open_stream(session, live_server, streams, **{"Last-Event-ID": "3"})
    message = reader.next_event(WAIT)
    assert message is not None and message["event"] == "resync"


def test_the_stream_needs_a_signed_in_user(app, demo, live_server):
    plain = requests.get(f"{live_server}/events", allow_redirects=False, timeout=5)
    assert plain.status_code == 302
    assert plain.headers["Location"].startswith("/login")

    htmx = requests.get(
        f"{live_server}/events", headers={"HX-Request": "true"}, allow_redirects=False, timeout=5
    )
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/login")


def test_open_streams_hold_no_database_connection(
    app, demo, database_url, broker, live_server, streams
):
    def listeners(conn: psycopg.Connection) -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchone()
        return row[0] if row else -1

    with psycopg.connect(database_url, autocommit=True) as conn:
        readers = [open_stream(signed_in(live_server, "agent@demo.test"), live_server, streams)]
        before = listeners(conn)
        readers += [
            open_stream(signed_in(live_server, email), live_server, streams)
            for email in ("manager@demo.test", "admin@acme.test")
        ]
        assert broker.subscriber_count() == 3
        # One LISTEN connection for the process, not one per stream. (Other tests' apps may
        # still hold theirs for a while, hence no absolute number.)
        assert listeners(conn) <= before
        assert broker.connections == 1

        idle_in_tx = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state = 'idle in transaction'"
        ).fetchone()
    assert idle_in_tx == (0,)
    with app.app_context():
        assert db.engine.pool.checkedout() == 0

    # And the streams work in that state.
    send(database_url, demo["demo"], "ticket", 5)
    for reader in readers[:2]:
        message = reader.next_event(WAIT)
        assert message is not None and json.loads(message["data"])["id"] == 5


def test_a_client_that_leaves_is_unsubscribed(app, demo, broker, live_server, streams):
    session = signed_in(live_server, "engineer@demo.test")
    reader = open_stream(session, live_server, streams)
    assert broker.subscriber_count() == 1
    reader.close()
    # The server notices at the next heartbeat write and closes the generator.
    assert wait_for(lambda: broker.subscriber_count() == 0, 5)


def test_a_stream_ends_after_its_time(app, demo, broker, live_server, streams):
    app.config["LIVE_MAX_STREAM_SECONDS"] = 1
    session = signed_in(live_server, "agent@demo.test")
    reader = open_stream(session, live_server, streams)
    deadline = time.monotonic() + 5
    while (message := reader.next(max(0.01, deadline - time.monotonic()))) is not None:
        assert "event" not in message
    assert wait_for(lambda: broker.subscriber_count() == 0, 2)


def test_streams_beyond_the_limit_are_refused(app, demo, live_server, streams):
    app.config["LIVE_MAX_STREAMS"] = 1
    session = signed_in(live_server, "agent@demo.test")
    open_stream(session, live_server, streams)
    refused = session.get(f"{live_server}/events", stream=True, timeout=5)
    refused.close()
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"
