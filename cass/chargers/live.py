"""Live events for the charger pages: the tenant's stream, filtered and coalesced.

The bridge sends a `charger` event on every status or presence change of every charger, so a
tenant with thousands of chargers sends many a second. The general stream (`GET /events`) would
hand each of them to every open charger page, and a page cannot tell "mine" from "another's"
without JavaScript. These streams do it on the server, from the same per-process broker:

- a charger page hears only its own charger's events and the tenant's `command` events (rare;
  the page re-reads its command list, which is one indexed select);
- the charger list hears every charger event, but
- a charger page also watches its charger's presence (online, last seen) once a second: the
  bridge records heartbeats and other frames without an event (one per frame would flood every
  page), so the page asks, one primary-key select, and hears a `charger` event when it moved;
- both are coalesced: the first event of a quiet period goes out at once, later ones at most
  once per interval, and the last one always goes out (a trailing send), so a burst of status
  notifications makes two refreshes, not dozens, and the page never misses the final state.

The home page's dashboard holds the same kind of stream, keeping the ticket and charger events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, request
from flask_login import current_user

from cass.extensions import db
from cass.live import Broker, get_broker
from cass.live_routes import (
    HEARTBEAT_SECONDS,
    MAX_STREAM_SECONDS,
    MAX_STREAMS,
    READY_WAIT_SECONDS,
    RETRY_MS,
    sse_message,
)

Keep = Callable[[dict[str, Any]], bool]
Watch = Callable[[], dict[str, Any]]


def charger_filter(ocpp_id: str) -> Keep:
    """Keep one charger's events and the tenant's command outcomes."""

    def keep(event: dict[str, Any]) -> bool:
        kind = event.get("kind")
        return (kind == "charger" and event.get("id") == ocpp_id) or kind == "command"

    return keep


def any_charger(event: dict[str, Any]) -> bool:
    """Keep every charger event (the list)."""
    return event.get("kind") == "charger"


def coalesced_stream(
    broker: Broker,
    tenant_id: int,
    keep: Keep,
    *,
    interval: float,
    resumed: bool,
    heartbeat: float,
    max_seconds: float,
    watch: Watch | None = None,
    watch_every: float = 1.0,
) -> Iterator[str]:
    """Yield the tenant's events that `keep` accepts as SSE, at most one per kind per
    `interval` seconds (the latest of each kind, the last one always sent); every `watch_every`
    seconds, also the event `watch` returns when it differs from the one before."""
    sub = broker.subscribe(tenant_id)
    try:
        broker.wait_listening(READY_WAIT_SECONDS)
        yield f": connected\nretry: {RETRY_MS}\nid: 0\n\n"
        event_id = 0
        if resumed:
            event_id += 1
            yield sse_message("resync", {"kind": "resync"}, event_id)
        pending: dict[str, dict[str, Any]] = {}
        sent_at: dict[str, float] = {}
        last_write = time.monotonic()
        deadline = last_write + max_seconds
        watched = watch() if watch else None
        next_watch = last_write + watch_every if watch else float("inf")
        while (now := time.monotonic()) < deadline:
            # Wake for the next trailing send, a heartbeat, a watch, or the end of the stream.
            waits = [last_write + heartbeat - now, deadline - now, next_watch - now]
            waits += [sent_at.get(kind, 0) + interval - now for kind in pending]
            event = sub.get(timeout=max(0.0, min(waits)))
            now = time.monotonic()
            if event is None and sub.closed:
                return
            if event is not None:
                if event["kind"] == "resync":
                    pending.clear()  # a resync makes the page re-read everything anyway
                    event_id += 1
                    last_write = now
                    yield sse_message("resync", event, event_id)
                elif keep(event):
                    pending[event["kind"]] = event
            if watch and now >= next_watch:
                next_watch = now + watch_every
                if (seen := watch()) != watched:
                    watched = pending[seen["kind"]] = seen
            for kind in [k for k in pending if now - sent_at.get(k, float("-inf")) >= interval]:
                event_id += 1
                sent_at[kind] = last_write = now
                yield sse_message(kind, pending.pop(kind), event_id)
            if now - last_write >= heartbeat:
                # Writing is how a dead client is noticed, even while others' events stream by.
                last_write = now
                yield ": ping\n\n"
    finally:
        broker.unsubscribe(sub)


def respond(
    keep: Keep, interval: float, watch: Watch | None = None, watch_every: float = 1.0
) -> Response:
    """Answer with the signed-in user's tenant's events that `keep` accepts, coalesced (SSE)."""
    tenant_id: int = current_user.tenant_id
    broker = get_broker(current_app)
    config = current_app.config
    if broker.subscriber_count() >= int(config.get("LIVE_MAX_STREAMS", MAX_STREAMS)):
        db.session.remove()
        return Response("Too many live streams; retry later.", 503, {"Retry-After": "30"})
    # As /events: give the connection back now, a stream lives for minutes (see live_routes).
    db.session.remove()
    response = Response(
        coalesced_stream(
            broker,
            tenant_id,
            keep,
            interval=interval,
            resumed="Last-Event-ID" in request.headers,
            heartbeat=float(config.get("LIVE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)),
            max_seconds=float(config.get("LIVE_MAX_STREAM_SECONDS", MAX_STREAM_SECONDS)),
            watch=watch,
            watch_every=watch_every,
        ),
        mimetype="text/event-stream",
    )
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
