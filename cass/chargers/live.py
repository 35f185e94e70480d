"""Live events for the charger pages: the tenant's stream, filtered and coalesced.

The bridge sends a `charger` event on every status or presence change of every charger, so a
tenant with thousands of chargers sends many a second. The general stream (`GET /events`) would
hand each of them to every open charger page, and a page cannot tell "mine" from "another's"
without JavaScript. These streams do it on the server, from the same per-process broker:

- a charger page hears only its own charger's events and the tenant's `command` events (rare;
  the page re-reads its command list, which is one indexed select);
- the charger list hears every charger event, but
- both are coalesced: the first event of a quiet period goes out at once, later ones at most
  once per interval, and the last one always goes out (a trailing send), so a burst of status
  notifications makes two refreshes, not dozens, and the page never misses the final state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from cass.live import Broker
from cass.live_routes import READY_WAIT_SECONDS, RETRY_MS, sse_message

Keep = Callable[[dict[str, Any]], bool]


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
) -> Iterator[str]:
    """Yield the tenant's events that `keep` accepts as SSE, at most one per kind per
    `interval` seconds (the latest of each kind, the last one always sent)."""
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
        while (now := time.monotonic()) < deadline:
            # Wake for the next trailing send, a heartbeat, or the end of the stream.
            waits = [last_write + heartbeat - now, deadline - now]
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
