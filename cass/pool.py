"""Hand out only live pooled connections, and take them back, without a round trip per request.

`pool_pre_ping` sends `SELECT 1` at every checkout: a round trip on every request, to catch
the rare connection that the server ended (a restart, an idle timeout, pg_terminate_backend).
The socket tells as much for free: an idle connection's socket has nothing to read, and a
server that ends a session sends its goodbye (or the kernel an end-of-file), which makes the
socket readable. Only then is the real ping sent; if it fails, every connection pooled before
is dropped, as pre-ping does, so one restart costs no request an error.

At the end of a request its transaction is rolled back (everything that was meant to last has
been committed). Waiting for that ROLLBACK's answer is another round trip per request, spent
after the answer is ready: so the ROLLBACK is sent as the request ends, and its answer read when
the connection is next checked out, by which time the server has long given it.

A select that does not depend on the next statement's rows can ride in that statement's round
trip (`alongside`): both go in one psycopg pipeline, in order, in the same transaction.
"""

from __future__ import annotations

import select
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import Flask, g, has_app_context
from psycopg import pq
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session

# Connections older than this are replaced at checkout (firewalls drop idle flows silently).
RECYCLE_SECONDS = 1800
# In a pooled connection's info: a ROLLBACK was sent and its answer is still to be read.
ROLLBACK_SENT = "cass_rollback_sent"
_OPEN = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


def _has_news(dbapi_connection: Any) -> bool:
    """Return whether the idle connection is closed or the server sent it something."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))  # POLLHUP and POLLERR are always reported too


def _read_rollback(info: dict[str, Any], dbapi_connection: Any) -> bool:
    """Read the answer to a ROLLBACK sent earlier, if any; return whether the connection is
    idle and sound."""
    if not info.pop(ROLLBACK_SENT, False):
        return True
    pgconn = dbapi_connection.pgconn
    sound = True
    try:
        while (result := pgconn.get_result()) is not None:  # blocks until the answer is in
            sound = sound and result.status == pq.ExecStatus.COMMAND_OK
    except Exception:  # any failure to read means the connection is gone
        return False
    return sound and pgconn.transaction_status == pq.TransactionStatus.IDLE


def _send_rollback(connection: Any) -> None:
    """Send ROLLBACK on the SQLAlchemy `connection`'s transaction without waiting for it.

    SQLAlchemy's own rollback, when the session closes, is skipped for it (`do_rollback`);
    the answer is read at the next checkout (or before anything else is sent on it).
    """
    fairy = connection.connection
    raw = fairy.driver_connection
    pgconn = raw.pgconn
    if (
        getattr(raw, "_pipeline", None) is not None
        or pgconn.transaction_status not in _OPEN
        or fairy.info.get(ROLLBACK_SENT)
    ):
        return
    with raw.lock:
        pgconn.send_query(b"ROLLBACK")
        while pgconn.flush():  # the connection is non-blocking: wait until all of it is out
            select.select([], [raw.fileno()], [])
    fairy.info[ROLLBACK_SENT] = True


def watch_connections(engine: Engine) -> None:
    """Check each pooled connection at checkout: the socket first, a ping only if it has news;
    read a ROLLBACK's answer left for later first."""

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if not _read_rollback(record.info, dbapi_connection):
            raise InvalidatePoolError("the rollback of this connection's last use failed")
        if not _has_news(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # any failure of the ping means the connection is gone
            alive = False
        if not alive:
            raise InvalidatePoolError("the server ended this connection")

    @event.listens_for(engine, "before_cursor_execute")
    def _before_execute(conn: Any, *args: Any) -> None:
        # Nothing is sent on a connection whose ROLLBACK was sent; should anything be, the
        # answer is read first.
        fairy = conn.connection
        if ROLLBACK_SENT in fairy.info and not _read_rollback(fairy.info, fairy.dbapi_connection):
            raise InvalidatePoolError("the rollback of this connection's last use failed")

    @event.listens_for(engine, "do_execute")
    def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        riders = _riders_of(context.root_connection)
        if riders is None:
            return False  # SQLAlchemy executes it as usual
        _execute_with(riders, cursor, statement, parameters)
        return True

    dialect = engine.dialect
    rollback = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            sent = dbapi_connection.info.get(ROLLBACK_SENT)  # a pooled connection's info
        except (AttributeError, NotImplementedError):  # a bare or ad-hoc connection
            sent = False
        if not sent:
            rollback(dbapi_connection)
        # else: on its way; its answer is read at the next checkout

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


@event.listens_for(Session, "after_begin")
def _remember(session: Session, transaction: Any, connection: Any) -> None:
    if has_app_context():
        g.db_transaction = (session, connection)


def send_rollbacks_early(app: Flask, scoped_session: Any) -> None:
    """As each request (or app context) ends, send the ROLLBACK of its session's open
    transaction without waiting for the answer; the session's close then hands the connection
    back to the pool as usual."""

    @app.teardown_appcontext
    def _rollback_early(exc: BaseException | None) -> None:
        # Registered after Flask-SQLAlchemy's teardown, so it runs first: before the close.
        session, connection = g.pop("db_transaction", (None, None))
        if (
            connection is None
            or session is not scoped_session()
            or connection.closed
            or not connection.in_transaction()
        ):
            return
        _send_rollback(connection)


def _riders_of(connection: Any) -> tuple[Any, str, Mapping[str, Any], list[Any]] | None:
    """Take the select waiting `alongside` the next statement on `connection`, if any."""
    riders = g.get("alongside") if has_app_context() else None
    # Only a statement on the connection named (the session's, bound to its tenant).
    if riders is None or connection is not riders[0]:
        return None
    del g.alongside
    return riders  # type: ignore[no-any-return]


def _execute_with(riders: Any, cursor: Any, statement: str, parameters: Any) -> None:
    """Execute `statement` on the psycopg `cursor` and the riders' select in one round trip."""
    _, sql, params, rows = riders
    raw = cursor.connection
    with raw.pipeline():  # both sent at once; leaving the block reads both results
        cursor.execute(statement, parameters)
        other = raw.cursor()
        other.execute(sql, params)
    rows.extend(other.fetchall())


def fetch_direct(
    connection: Any, statement: str, parameters: Mapping[str, Any], row_factory: Any = None
) -> list[Any]:
    """Return the rows of `statement` (psycopg placeholders, parameters already processed) run
    on the SQLAlchemy `connection`'s psycopg connection, in its transaction, with a select
    waiting `alongside` in the same round trip.

    For the few hot selects whose statement is compiled once (the ticket list's page): going
    around SQLAlchemy's execution (its context and result objects) saves such a page ~0.25 ms
    of ~4. Errors come as SQLAlchemy's, as from `connection.execute`.
    """
    try:
        cursor = connection.connection.driver_connection.cursor(row_factory=row_factory)
        # Its listeners see the statement as any other (the one in watch_connections reads
        # the answer of a ROLLBACK left for later; tests count statements).
        connection.dispatch.before_cursor_execute(
            connection, cursor, statement, parameters, None, False
        )
        riders = _riders_of(connection)
        if riders is None:
            cursor.execute(statement, parameters)
        else:
            _execute_with(riders, cursor, statement, parameters)
        return cursor.fetchall()
    except psycopg.Error as exc:
        # SQLAlchemy's handling: wrapped as DBAPIError, and a connection the server ended is
        # invalidated (the pool then replaces it).
        connection._handle_dbapi_exception(exc, statement, parameters, None, None)
        raise  # not reached: the handler raises


@contextmanager
def alongside(
    connection: Any, sql: str, params: Mapping[str, Any]
) -> Iterator[list[tuple[Any, ...]]]:
    """Send the select `sql` (psycopg placeholders) with the next statement that SQLAlchemy
    executes on `connection` in the block, in one round trip, in its transaction; yield the
    list its rows are put in.

    The list stays empty when no statement was executed in the block: the caller then runs
    its select itself.
    """
    rows: list[tuple[Any, ...]] = []
    g.alongside = (connection, sql, params, rows)
    try:
        yield rows
    finally:
        g.pop("alongside", None)
