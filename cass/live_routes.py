"""`GET /events`: the signed-in user's tenant's live events as Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask_login import current_user, login_required

from cass.extensions import db
from cass.live import Broker, get_broker

bp = Blueprint("live", __name__)

HEARTBEAT_SECONDS = 15.0
# Streams end now and then; the browser reconnects (re-checking the sign-in) and resyncs.
MAX_STREAM_SECONDS = 900.0
RETRY_MS = 3000
# The first stream of a process waits this long for the LISTEN connection to come up.
READY_WAIT_SECONDS = 5.0
# Each stream holds a server thread for its life; above this many per process, new streams
# are refused (503) so ordinary page requests still find a free thread. Pages poll meanwhile.
MAX_STREAMS = 24


def sse_message(kind: str, data: dict[str, Any], event_id: int) -> str:
    """Return one SSE message: `event:` the kind, `data:` one line of JSON."""
    name = "".join(ch for ch in kind if ch not in "\r\n") or "message"
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True, default=str)
    return f"id: {event_id}\nevent: {name}\ndata: {body}\n\n"


def _stream(
    broker: Broker, tenant_id: int, resumed: bool, heartbeat: float, max_seconds: float
) -> Iterator[str]:
    """Yield the tenant's events as SSE until the client leaves or the stream's time is up."""
    sub = broker.subscribe(tenant_id)
    try:
        broker.wait_listening(READY_WAIT_SECONDS)
        # The id makes the browser send Last-Event-ID when it reconnects, which is how a
        # returning client is told (below) that it may have missed events.
        yield f": connected\nretry: {RETRY_MS}\nid: 0\n\n"
        event_id = 0
        if resumed:
            event_id += 1
            yield sse_message("resync", {"kind": "resync"}, event_id)
        deadline = time.monotonic() + max_seconds
        while (remaining := deadline - time.monotonic()) > 0:
            event = sub.get(timeout=min(heartbeat, remaining))
            if event is None:
                if sub.closed:  # the broker stopped: end, and let the browser reconnect
                    return
                # Writing is how a dead client is noticed; proxies also keep the stream open.
                yield ": ping\n\n"
                continue
            event_id += 1
            yield sse_message(event["kind"], event, event_id)
    finally:
        # Runs on GeneratorExit too, when the server closes the stream of a client that left.
        broker.unsubscribe(sub)


@bp.get("/events")
@login_required
def events() -> Response:
    """Stream the signed-in user's tenant's live events (Server-Sent Events)."""
    tenant_id: int = current_user.tenant_id
    broker = get_broker(current_app)
    heartbeat = float(current_app.config.get("LIVE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    max_seconds = float(current_app.config.get("LIVE_MAX_STREAM_SECONDS", MAX_STREAM_SECONDS))
    resumed = "Last-Event-ID" in request.headers
    if broker.subscriber_count() >= int(current_app.config.get("LIVE_MAX_STREAMS", MAX_STREAMS)):
        db.session.remove()
        # The htmx SSE extension retries with backoff; the page's polling covers the meantime.
        return Response("Too many live streams; retry later.", 503, {"Retry-After": "30"})
    # Loading the user opened a transaction; end it and hand the connection back to the pool
    # now, as a stream lives for minutes. The generator is deliberately not wrapped in
    # stream_with_context: it needs nothing from the request, and outside the request context
    # nothing in it can lazily reopen a session (current_user, g) that would then stay
    # checked out, idle in transaction, for the life of the stream.
    db.session.remove()
    response = Response(
        _stream(broker, tenant_id, resumed, heartbeat, max_seconds),
        mimetype="text/event-stream",
    )
    response.headers["Cache-Control"] = "no-cache"
    # Tell nginx-style proxies not to buffer the stream.
    response.headers["X-Accel-Buffering"] = "no"
    return response
