"""Hand out only live pooled connections, without a round trip per request.

`pool_pre_ping` sends `SELECT 1` at every checkout: a round trip on every request, to catch
the rare connection that the server ended (a restart, an idle timeout, pg_terminate_backend).
The socket tells as much for free: an idle connection's socket has nothing to read, and a
server that ends a session sends its goodbye (or the kernel an end-of-file), which makes the
socket readable. Only then is the real ping sent; if it fails, every connection pooled before
is dropped, as pre-ping does, so one restart costs no request an error.
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError

# Connections older than this are replaced at checkout (firewalls drop idle flows silently).
RECYCLE_SECONDS = 1800


def _has_news(dbapi_connection: Any) -> bool:
    """Return whether the idle connection is closed or the server sent it something."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))  # POLLHUP and POLLERR are always reported too


def watch_connections(engine: Engine) -> None:
    """Check each pooled connection at checkout: the socket first, a ping only if it has news."""

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if not _has_news(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # any failure of the ping means the connection is gone
            alive = False
        if not alive:
            raise InvalidatePoolError("the server ended this connection")
