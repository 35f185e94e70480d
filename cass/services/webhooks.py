"""Outbound webhooks: endpoints, the delivery queue's worker, retries and retention.

Events are queued by database triggers (migration 0021) in the transaction of whoever writes
the change; this module manages the endpoints, queues the "ping" test event, and delivers.

Delivery: the scheduler's job claims due deliveries (FOR UPDATE SKIP LOCKED, then a lease on
`next_attempt_at`, committed before any request is made, so no row lock is held across the
network), POSTs them concurrently with a short timeout, and records every result in one
UPDATE. A 2xx answer is delivered; anything else -- another status, a redirect (never
followed), a timeout, a refused connection, a blocked address -- is retried with exponential
backoff and jitter, and after MAX_ATTEMPTS the delivery is failed. At least once: a crash
between the request and the record re-sends it after the lease, with the same
X-CASS-Delivery id, so receivers deduplicate on that.

Each request is signed as the inbound CSMS events are (cass.services.csms_events.sign):
X-CASS-Signature = "sha256=" + hex HMAC-SHA256(secret, "<X-CASS-Timestamp>.<raw body>").
"""

from __future__ import annotations

import hmac
import http.client
import ipaddress
import logging
import random
import secrets
import socket
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, select, text, update

from cass.extensions import db
from cass.models import Tenant, User, WebhookDelivery, WebhookEndpoint
from cass.models.webhooks import PING_EVENT, WEBHOOK_EVENTS
from cass.services.audit import audit
from cass.services.csms_events import sign
from cass.tenancy import current_tenant_id, scoped

log = logging.getLogger("cass.webhooks")

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
BACKOFF_FACTOR = 4
# 30 s, 2 min, 8 min, 32 min, 2 h 8 min, 8 h 32 min, 12 h: eight attempts over about a day.
BACKOFF_CAP = timedelta(hours=12)
JITTER = 0.1
# A claimed delivery is not claimed again for this long (a crashed worker's rows come back).
LEASE = timedelta(minutes=2)
BATCH = 100
# One run delivers batches until the queue is empty or this much time has passed.
RUN_BUDGET = timedelta(seconds=50)
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "CASS-Webhooks/1"
PAGE_SIZE = 25
# Kept in audit rows and shown in lists: never the secret itself.
AUDITED = ("url", "description", "events", "active")


class WebhookError(ValueError):
    """The endpoint cannot be saved as asked; the message is shown to the admin (422)."""


def new_secret() -> str:
    """Return a fresh signing secret."""
    return "whsec_" + secrets.token_urlsafe(32)


def check_url(url: str) -> str:
    """Return the URL stripped, or raise WebhookError when it is not an http(s) URL with a host."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("Enter an http:// or https:// URL with a host name.")
    if parts.username or parts.password:
        raise WebhookError("Leave credentials out of the URL; requests are signed instead.")
    try:
        parts.port  # noqa: B018 (raises on a port out of range)
    except ValueError as exc:
        raise WebhookError("The URL's port is not valid.") from exc
    return url


def _check_events(events: list[str]) -> list[str]:
    chosen = [name for name in WEBHOOK_EVENTS if name in events]
    if not chosen or len(chosen) != len(set(events)):
        raise WebhookError("Choose at least one of the listed events.")
    return chosen


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in AUDITED}


def endpoints() -> list[WebhookEndpoint]:
    """Return the tenant's endpoints, oldest first."""
    return list(db.session.scalars(scoped(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def create_endpoint(
    actor: User, url: str, description: str, events: list[str], active: bool = True
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint with a new secret; return it and the secret (shown once)."""
    secret = new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=current_tenant_id(),
        url=check_url(url),
        description=description.strip(),
        events=_check_events(events),
        active=active,
        secret=secret,
    )
    db.session.add(endpoint)
    db.session.flush()
    audit(actor.id, "webhook_endpoint", endpoint.id, "create", None, _state(endpoint))
    db.session.commit()
    return endpoint, secret


def update_endpoint(
    actor: User,
    endpoint: WebhookEndpoint,
    url: str,
    description: str,
    events: list[str],
    active: bool,
) -> WebhookEndpoint:
    """Change an endpoint's URL, description, events and active flag."""
    before = _state(endpoint)
    endpoint.url = check_url(url)
    endpoint.description = description.strip()
    endpoint.events = _check_events(events)
    _set_active(endpoint, active)
    if _state(endpoint) != before:
        audit(actor.id, "webhook_endpoint", endpoint.id, "update", before, _state(endpoint))
    db.session.commit()
    return endpoint


def _set_active(endpoint: WebhookEndpoint, active: bool) -> None:
    if endpoint.active and not active:
        # A disabled endpoint's queue is dropped, not kept to flood it when it is enabled.
        db.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.tenant_id == endpoint.tenant_id,
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == "pending",
            )
            .values(status="failed", last_error="endpoint disabled", next_attempt_at=None)
        )
    endpoint.active = active


def set_active(actor: User, endpoint: WebhookEndpoint, active: bool) -> WebhookEndpoint:
    """Enable or disable an endpoint; disabling fails its pending deliveries."""
    before = _state(endpoint)
    _set_active(endpoint, active)
    if before["active"] != active:
        audit(actor.id, "webhook_endpoint", endpoint.id, "update", before, _state(endpoint))
    db.session.commit()
    return endpoint


def rotate_secret(actor: User, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new secret and return it (shown once); the old one stops at once."""
    secret = new_secret()
    endpoint.secret = secret
    endpoint.updated_at = datetime.now(UTC)
    audit(actor.id, "webhook_endpoint", endpoint.id, "rotate_secret", None, None)
    db.session.commit()
    return secret


def delete_endpoint(actor: User, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log."""
    audit(actor.id, "webhook_endpoint", endpoint.id, "delete", _state(endpoint), None)
    db.session.delete(endpoint)
    db.session.commit()


def _timestamp(at: datetime) -> str:
    """Return `at` as the payloads write times (the migration's cass_webhook_time)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def send_test(actor: User, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a "ping" event for the endpoint, delivered by the next run of the job."""
    event_id = uuid.uuid4()
    slug = db.session.scalar(select(Tenant.slug).where(Tenant.id == endpoint.tenant_id))
    delivery = WebhookDelivery(
        tenant_id=endpoint.tenant_id,
        endpoint_id=endpoint.id,
        event_type=PING_EVENT,
        event_id=event_id,
        payload={
            "id": str(event_id),
            "type": PING_EVENT,
            "occurred_at": _timestamp(datetime.now(UTC)),
            "tenant": slug,
            "data": {"endpoint_id": endpoint.id, "sent_by": actor.email},
        },
        next_attempt_at=datetime.now(UTC),
    )
    db.session.add(delivery)
    db.session.commit()
    return delivery


def redeliver(actor: User, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a failed delivery again, same id and body, with a fresh run of attempts."""
    if delivery.status != "failed":
        raise WebhookError("Only a failed delivery can be sent again.")
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        raise WebhookError("Enable the endpoint first.")
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = datetime.now(UTC)
    audit(actor.id, "webhook_delivery", delivery.id, "redeliver", None, None)
    db.session.commit()
    return delivery


@dataclass
class Page:
    """One page of an endpoint's deliveries, newest first, and the id to page on from."""

    deliveries: list[WebhookDelivery]
    older: int | None


def deliveries(endpoint: WebhookEndpoint, before: int | None = None) -> Page:
    """Return the endpoint's deliveries newest first, those with ids below `before` (keyset)."""
    stmt = scoped(WebhookDelivery, WebhookDelivery.endpoint_id == endpoint.id)
    if before is not None:
        stmt = stmt.where(WebhookDelivery.id < before)
    rows = list(db.session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(PAGE_SIZE + 1)))
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return Page(rows[:PAGE_SIZE], older)


# ---- delivery (scheduler job, system context) ----

CLAIM_SQL = """
WITH due AS (
    SELECT id FROM webhook_delivery
    WHERE status = 'pending' AND next_attempt_at <= :now
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_delivery d
SET next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :lease)
FROM due, webhook_endpoint e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.event_id, d.event_type, d.payload::text AS body, d.attempts, e.url, e.secret,
          e.active
"""

RECORD_SQL = """
UPDATE webhook_delivery d
SET attempts = d.attempts + 1, status = r.status, last_attempt_at = r.at,
    last_status_code = r.code, last_error = r.error, response_ms = r.ms,
    next_attempt_at = r.next_at,
    delivered_at = CASE WHEN r.status = 'delivered' THEN r.at END
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:ats AS timestamptz[]),
            CAST(:codes AS int[]), CAST(:errors AS text[]), CAST(:ms AS int[]),
            CAST(:next_ats AS timestamptz[]))
  AS r(id, status, at, code, error, ms, next_at)
WHERE d.id = r.id
"""


@dataclass
class Outcome:
    """What one attempt got: the HTTP status (None when none came) and an error to show."""

    code: int | None
    error: str | None
    ms: int

    @property
    def ok(self) -> bool:
        """Return whether the receiver took it (2xx)."""
        return self.code is not None and 200 <= self.code < 300


def backoff(attempts: int) -> timedelta:
    """Return the wait after the `attempts`-th failed attempt (exponential, capped, jittered)."""
    base = min(FIRST_RETRY * BACKOFF_FACTOR ** (attempts - 1), BACKOFF_CAP)
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def _allowed(ip: str, allow_private: bool) -> bool:
    address = ipaddress.ip_address(ip)
    return allow_private or (address.is_global and not address.is_multicast)


class _HTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to an address checked beforehand (no second DNS lookup)."""

    def __init__(self, host: str, port: int | None, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address; the certificate is checked for the host name."""

    def __init__(self, host: str, port: int | None, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool
) -> Outcome:
    """POST `body` to `url` once: no redirects followed, no proxy, checked addresses only."""
    started = time.monotonic()

    def done(code: int | None, error: str | None) -> Outcome:
        return Outcome(
            code, error[:200] if error else None, int((time.monotonic() - started) * 1000)
        )

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return done(None, "not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return done(None, f"DNS: {exc}")
    ips = [info[4][0] for info in infos]
    # Every address must pass, so a name cannot mix a public and a private one.
    if not ips or not all(_allowed(ip, allow_private) for ip in ips):
        return done(None, "address not allowed (private or reserved)")
    kind = _HTTPSConnection if parts.scheme == "https" else _HTTPConnection
    conn = kind(parts.hostname, port, ips[0], timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        code = response.status
    except TimeoutError:
        return done(None, f"timed out after {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return done(None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if 200 <= code < 300:
        return done(code, None)
    if 300 <= code < 400:
        return done(code, f"HTTP {code}: redirect not followed")
    return done(code, f"HTTP {code} {response.reason}".strip())


def headers_for(
    event_type: str, event_id: str, secret: str, body: bytes, at: int
) -> dict[str, str]:
    """Return the request headers of one attempt, signature included."""
    timestamp = str(at)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-CASS-Event": event_type,
        "X-CASS-Delivery": event_id,
        "X-CASS-Timestamp": timestamp,
        "X-CASS-Signature": sign(secret, timestamp, body),
    }


def _attempt(row: Any, timeout: float, allow_private: bool) -> Outcome:
    if not row.active:
        return Outcome(None, "endpoint disabled", 0)
    body = row.body.encode()
    headers = headers_for(row.event_type, str(row.event_id), row.secret, body, int(time.time()))
    return post(row.url, body, headers, timeout, allow_private)


def deliver_batch(now: datetime | None = None, limit: int = BATCH) -> int:
    """Claim up to `limit` due deliveries, send them and record the results; return how many."""
    now = now or datetime.now(UTC)
    config = current_app.config
    rows = db.session.execute(
        text(CLAIM_SQL), {"now": now, "limit": limit, "lease": LEASE.total_seconds()}
    ).all()
    # The lease is committed before the requests: no row lock is held across the network.
    db.session.commit()
    if not rows:
        return 0
    timeout = float(config["CASS_WEBHOOK_TIMEOUT"])
    allow_private = bool(config["CASS_WEBHOOK_ALLOW_PRIVATE"])
    workers = max(1, min(int(config["CASS_WEBHOOK_CONCURRENCY"]), len(rows)))
    with ThreadPoolExecutor(workers, thread_name_prefix="webhook") as pool:
        outcomes = list(pool.map(lambda row: _attempt(row, timeout, allow_private), rows))
    finished = datetime.now(UTC)
    record: dict[str, list[Any]] = {
        k: [] for k in ("ids", "statuses", "ats", "codes", "errors", "ms", "next_ats")
    }
    for row, outcome in zip(rows, outcomes, strict=True):
        attempts = row.attempts + 1
        if outcome.ok:
            status, next_at = "delivered", None
        elif attempts >= MAX_ATTEMPTS or outcome.error == "endpoint disabled":
            status, next_at = "failed", None
        else:
            # Backoff counts from the attempt's own time (`now` in tests that move the clock).
            status, next_at = "pending", max(now, finished) + backoff(attempts)
        for key, value in zip(
            record,
            (row.id, status, finished, outcome.code, outcome.error, outcome.ms, next_at),
            strict=True,
        ):
            record[key].append(value)
    db.session.execute(text(RECORD_SQL), record)
    db.session.commit()
    return len(rows)


def deliver_due(now: datetime | None = None) -> int:
    """Deliver due webhooks in batches until none is due or the run's budget is spent."""
    started = time.monotonic()
    total = 0
    while True:
        sent = deliver_batch(now)
        total += sent
        if sent < BATCH or time.monotonic() - started > RUN_BUDGET.total_seconds():
            return total


def apply_retention(days: int, now: datetime | None = None) -> int:
    """Delete delivered and failed deliveries older than `days`; return how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    result = db.session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status != "pending", WebhookDelivery.created_at < cutoff
        )
    )
    db.session.commit()
    return result.rowcount or 0


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Return whether a request's X-CASS-Signature matches (for receivers written in Python)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip().lower())
