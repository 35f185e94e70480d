"""Live updates: Postgres NOTIFY on commit, fanned out to each web process's subscribers.

A change calls `notify()` inside its own transaction, so Postgres delivers the event only when
that transaction commits (and never for a rolled-back one). Each web process runs one `Broker`:
a daemon thread holding one dedicated autocommit connection that LISTENs on `CHANNEL` and hands
every event to the subscribers of the event's tenant. Events are hints ("ticket 42 changed"),
never content: a page that hears one re-fetches through the normal, permission-checked views.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import text

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

CHANNEL = "cass_live"
APPLICATION_NAME = "cass-live"
# Postgres refuses a payload of 8000 bytes or more (and fails the transaction): stay below.
MAX_PAYLOAD_BYTES = 7900
MAX_IDENT_CHARS = 200
KIND_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
RESYNC: dict[str, Any] = {"kind": "resync"}
EXTENSION_KEY = "cass_live_broker"

_NOTIFY_SQL = text("SELECT pg_notify(:channel, :payload)")
_extension_lock = threading.Lock()


def _dumps(value: Any) -> str:
    """Serialize compactly as ASCII JSON, so characters equal bytes and no newline appears."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str)


def _short(ident: str | int) -> str | int:
    return ident[:MAX_IDENT_CHARS] if isinstance(ident, str) else ident


def _check_kind(kind: str) -> None:
    if not KIND_RE.fullmatch(kind):
        # The kind becomes the SSE event name: it must stay one safe line.
        raise ValueError(f"invalid live event kind {kind!r}")


def build_payload(tenant_id: int, kind: str, ident: str | int, extra: dict[str, Any]) -> str:
    """Return the event's JSON, dropping extras (listed in "truncated") that would not fit."""
    base: dict[str, Any] = {"t": tenant_id, "kind": kind, "id": _short(ident)}
    # The routing keys always win: an extra named "t" must not redirect the event.
    extras = {k: v for k, v in extra.items() if k not in base}
    payload = _dumps({**base, **extras})
    if len(payload) <= MAX_PAYLOAD_BYTES:
        return payload
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in extras.items():
        candidate = {**base, **kept, key: value, "truncated": [*dropped, key]}
        if len(_dumps(candidate)) <= MAX_PAYLOAD_BYTES:
            kept[key] = value
        else:
            dropped.append(key)
    payload = _dumps({**base, **kept, "truncated": dropped})
    if len(payload) > MAX_PAYLOAD_BYTES:  # only absurdly many extra names get here
        payload = _dumps({**base, "truncated": True})
    return payload


def notify(
    connection_or_session: Any, tenant_id: int, kind: str, ident: str | int, **extra: Any
) -> None:
    """Queue a live event in the caller's transaction; Postgres sends it only on commit."""
    if isinstance(tenant_id, bool) or not isinstance(tenant_id, int):
        raise TypeError(f"tenant_id must be an int, got {type(tenant_id).__name__}")
    _check_kind(kind)
    try:
        payload = build_payload(tenant_id, kind, ident, extra)
    except (TypeError, ValueError):  # e.g. a circular extra; the event still goes out
        log.warning("live: extras of a %s event could not be encoded; sent without", kind)
        payload = _dumps({"t": tenant_id, "kind": kind, "id": str(ident), "truncated": True})
    if isinstance(connection_or_session, psycopg.Connection):
        connection_or_session.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
    else:  # a SQLAlchemy Session or Connection
        connection_or_session.execute(_NOTIFY_SQL, {"channel": CHANNEL, "payload": payload})


_NOTIFY_MANY_SQL = text(
    "SELECT count(pg_notify(:channel, p)) FROM unnest(CAST(:payloads AS text[])) p"
)


def notify_many(session: Any, events: Iterable[tuple[int, str, str | int]]) -> None:
    """Queue many live events (tenant, kind, id) in the caller's transaction, in one statement.

    A tenant's events go packed, as many as fit, in one notification (`{"t": 7, "many": [[kind,
    id], ...]}`) that the broker unpacks: a sweep that changes thousands of tickets sends tens of
    notifications, not thousands.
    """
    grouped: dict[int, list[list[Any]]] = {}
    for tenant_id, kind, ident in events:
        _check_kind(kind)
        grouped.setdefault(tenant_id, []).append([kind, _short(ident)])
    payloads = []
    for tenant_id, items in grouped.items():
        if len(items) == 1:
            payloads.append(build_payload(tenant_id, items[0][0], items[0][1], {}))
            continue
        room = MAX_PAYLOAD_BYTES - len(_dumps({"t": tenant_id, "many": []}))
        batch: list[list[Any]] = []
        used = 0
        for item in items:
            size = len(_dumps(item)) + 1  # and its comma
            if batch and used + size > room:
                payloads.append(_dumps({"t": tenant_id, "many": batch}))
                batch, used = [], 0
            batch.append(item)
            used += size
        payloads.append(_dumps({"t": tenant_id, "many": batch}))
    if payloads:
        session.execute(_NOTIFY_MANY_SQL, {"channel": CHANNEL, "payloads": payloads})


def unpack(event: Any) -> list[dict[str, Any]]:
    """Return the events in one decoded notification (several when packed by notify_many),
    each with a kind fit to be an SSE event name; drop anything else."""
    if not isinstance(event, dict):
        return []
    many = event.get("many")
    if isinstance(many, list):
        tenant = event.get("t")
        found = [
            {"t": tenant, "kind": item[0], "id": item[1]}
            for item in many
            if isinstance(item, list) and len(item) == 2
        ]
    else:
        found = [event]
    # Anyone may pg_notify this channel; only well-formed kinds become SSE event names.
    return [e for e in found if isinstance(e.get("kind"), str) and KIND_RE.fullmatch(e["kind"])]


class Subscription:
    """A bounded queue of one tenant's events for one client (e.g. one SSE stream)."""

    def __init__(self, tenant_id: int, maxsize: int = 100) -> None:
        self.tenant_id = tenant_id
        self.maxsize = maxsize
        self.dropped = 0
        self._items: deque[dict[str, Any]] = deque()
        self._resync = False
        self._closed = False
        self._cond = threading.Condition()

    @property
    def closed(self) -> bool:
        """Return whether the subscription was ended (unsubscribed or the broker stopped)."""
        return self._closed

    def put(self, event: dict[str, Any]) -> None:
        """Queue `event`; when full, drop the oldest and ask the client to resync."""
        with self._cond:
            if self._closed:
                return
            if event.get("kind") == RESYNC["kind"]:
                self._resync = True
            else:
                if len(self._items) >= self.maxsize:
                    # A slow client has missed something: a resync makes it whole again.
                    self._items.popleft()
                    self.dropped += 1
                    self._resync = True
                self._items.append(event)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Return the next event, or None after `timeout` seconds or once closed."""
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._resync or self._items or self._closed, timeout
            )
            if not ready or self._closed:
                return None
            if self._resync:
                self._resync = False
                return dict(RESYNC)
            return self._items.popleft()

    def close(self) -> None:
        """End the subscription and wake its reader."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class Broker:
    """One LISTEN connection per process, fanning events out to per-tenant subscribers."""

    def __init__(
        self,
        dsn: str,
        *,
        queue_size: int = 100,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        poll_interval: float = 0.5,
        health_interval: float = 30.0,
        idle_seconds: float = 60.0,
    ) -> None:
        self.dsn = dsn
        self.queue_size = queue_size
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self.idle_seconds = idle_seconds
        self.connections = 0  # successful LISTENs so far
        self._lost = False  # a connection failed: its successor must tell subscribers to resync
        self._subs: dict[int, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self._backend_pid: int | None = None

    # -- subscribers -------------------------------------------------------------------

    def subscribe(self, tenant_id: int) -> Subscription:
        """Return a new subscription to `tenant_id`'s events, starting the listener if needed."""
        sub = Subscription(tenant_id, self.queue_size)
        with self._lock:
            self._subs.setdefault(tenant_id, set()).add(sub)
            self._ensure_started()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub` (safe to call twice)."""
        with self._lock:
            subs = self._subs.get(sub.tenant_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.tenant_id]
        sub.close()

    def subscriber_count(self) -> int:
        """Return how many subscriptions are open in this process."""
        with self._lock:
            return sum(len(subs) for subs in self._subs.values())

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver one decoded event to its tenant's subscribers."""
        tenant = event.get("t")
        with self._lock:
            targets = list(self._subs.get(tenant, ())) if isinstance(tenant, int) else []
        for sub in targets:
            sub.put(event)

    def _resync_all(self) -> None:
        """Tell every subscriber it may have missed events."""
        with self._lock:
            targets = [sub for subs in self._subs.values() for sub in subs]
        for sub in targets:
            sub.put(RESYNC)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Return whether the LISTEN connection is up right now."""
        return self._listening.is_set()

    @property
    def backend_pid(self) -> int | None:
        """Return the server process id of the LISTEN connection, while it is up."""
        return self._backend_pid

    def wait_listening(self, timeout: float) -> bool:
        """Block until the LISTEN connection is up (or `timeout`); return whether it is."""
        return self._listening.wait(timeout)

    def _ensure_started(self) -> None:
        # is_alive() is also False in a forked child, so each gunicorn worker starts its own.
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cass-live-broker", daemon=True)
        self._thread.start()

    def start(self) -> None:
        """Start the listener thread now rather than on the first subscribe."""
        with self._lock:
            self._ensure_started()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the listener, close its connection and end every subscription."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            subs = [sub for group in self._subs.values() for sub in group]
            self._subs.clear()
        for sub in subs:
            sub.close()

    # -- the listener thread -----------------------------------------------------------

    def _retire_if_idle(self) -> bool:
        """Let this thread end when nobody subscribes; a later subscribe starts a new one."""
        with self._lock:
            # Under the lock, so a concurrent subscribe either is seen here or starts a thread.
            if self._subs or self._thread is not threading.current_thread():
                return False
            self._thread = None
            self._lost = False  # nobody was listening through the gap, so nobody missed it
            return True

    def _run(self) -> None:
        """Listen until stopped or idle, reconnecting with capped exponential backoff."""
        delay = self.min_backoff
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self._listen():
                    return
            except (psycopg.Error, OSError) as exc:
                self._lost = True
                log.warning("live: LISTEN connection lost (%s); reconnecting", exc)
            except Exception:  # the thread must outlive any failure, or live pages go quiet
                self._lost = True
                log.exception("live: listener failed; restarting")
            finally:
                self._listening.clear()
                self._backend_pid = None
            if self._stop.is_set() or self._retire_if_idle():
                return
            if time.monotonic() - started > self.max_backoff:
                delay = self.min_backoff  # it was a stable connection: retry quickly
            # Jitter keeps every worker from reconnecting in the same instant after a restart.
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_backoff)

    def _listen(self) -> bool:
        """Connect, LISTEN and dispatch until stopped or idle (True when idle); raise on failure."""
        with psycopg.connect(
            self.dsn,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=5,
            # Over TCP, notice a silently vanished server within about a minute.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connections += 1
            self._backend_pid = conn.info.backend_pid
            self._listening.set()
            if self._lost:
                # Whatever was committed while we were away was never heard: resync.
                self._lost = False
                self._resync_all()
            last_seen = time.monotonic()
            idle_since: float | None = None
            while not self._stop.is_set():
                # A short timeout lets stop() be noticed; events are yielded as they arrive.
                for note in conn.notifies(timeout=self.poll_interval):
                    last_seen = time.monotonic()
                    self._dispatch(note.payload)
                    if self._stop.is_set():
                        return False
                now = time.monotonic()
                if now - last_seen > self.health_interval:
                    # A quiet channel or a dead socket? A round trip tells them apart.
                    conn.execute("SELECT 1")
                    last_seen = now
                # Without subscribers the connection is closed after a grace period, which
                # spans the moment between one page's stream and the next page's.
                if self.subscriber_count():
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since > self.idle_seconds and self._retire_if_idle():
                    return True
        return False

    def _dispatch(self, payload: str) -> None:
        """Decode one notification and publish it; ignore anything malformed."""
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("live: ignoring a malformed payload on %s", CHANNEL)
            return
        events = unpack(event)
        if not events:
            log.warning("live: ignoring a payload without a valid kind on %s", CHANNEL)
        for one in events:
            self.publish(one)


def get_broker(app: Flask) -> Broker:
    """Return the app's broker (one per process), creating it on first use."""
    broker = app.extensions.get(EXTENSION_KEY)
    if broker is None:
        with _extension_lock:
            broker = app.extensions.get(EXTENSION_KEY)
            if broker is None:
                broker = Broker(
                    app.config["DATABASE_URL"],
                    queue_size=int(app.config.get("LIVE_QUEUE_SIZE", 100)),
                    idle_seconds=float(app.config.get("LIVE_IDLE_SECONDS", 60)),
                )
                app.extensions[EXTENSION_KEY] = broker
    return broker
