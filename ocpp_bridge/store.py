"""The bridge's database side: a psycopg async pool and a group-committing writer.

Every charger message that changes state becomes a *job* (an async function of a connection).
Jobs from all chargers queue up; a writer runs whatever has queued in one transaction, together
with the message-log rows gathered meanwhile, and commits once. Only after that commit does a
job's caller get its result, so the bridge answers a charger only once the effects are durable,
at the cost of one commit per batch instead of one per message. A failing job never takes its
batch-mates down: the batch is retried job by job.

Work that must not wait behind the chargers' messages has its own lane (`run_command`): claiming
a command for a charger runs on a writer of its own, so a command queued by the web goes out
while message batches are in flight. A claim made while the lane is idle runs at once, in the
caller's task, in autocommit on the lane's own connection: one round trip, with no BEGIN and
COMMIT of its own and no hand-over to the writer; claims that queue up meanwhile (a reconnect
storm) go in group commits. Every job in that lane must therefore be a single
statement, and none may NOTIFY (Postgres commits notifying transactions one at a time, and the
message batches notify). Periodic bookkeeping (the presence touch) runs in transactions of its
own (`run_alone`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger("ocpp_bridge.store")
T = TypeVar("T")
Job = Callable[[psycopg.AsyncConnection], Awaitable[Any]]

LOG_COLUMNS = (
    "at",
    "tenant_id",
    "charger_id",
    "direction",
    "message_type",
    "message_id",
    "action",
    "payload",
    "error_code",
    "error_description",
)
LogRow = tuple[datetime, int, int, str, int | None, str | None, str | None, str, str | None, Any]
# Log rows kept while the database is away, at most; beyond that the oldest are dropped.
MAX_PENDING_LOG_ROWS = 200_000
_COPY_LOG = f"COPY ocpp_message ({', '.join(LOG_COLUMNS)}) FROM STDIN"


# A batch that lost a deadlock (or a serialization conflict) to another transaction is not a
# database outage: it is run again, job by job.
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


class Rows:
    """A job that only adds rows to a table. A group commit writes the rows of all such jobs
    with one COPY per table, instead of a statement per job (run on its own, as when a batch
    is retried job by job, it copies its own rows)."""

    __slots__ = ("copy", "rows")

    def __init__(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        self.copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        self.rows = rows

    async def __call__(self, conn: psycopg.AsyncConnection) -> None:
        await _copy(conn, self.copy, self.rows)


class _Lane:
    """A queue of jobs and the writers that empty it in group commits."""

    __slots__ = ("autocommit", "conn", "jobs", "lock", "log_rows", "name", "wake", "writers")

    def __init__(
        self, name: str, writers: int, *, log_rows: bool, autocommit: bool = False
    ) -> None:
        self.name = name
        self.writers = writers
        self.log_rows = log_rows  # whether its batches also write the queued message-log rows
        # An autocommit lane runs its jobs (single statements each) on a connection of its own,
        # outside the pool, without a transaction around them.
        self.autocommit = autocommit
        self.conn: psycopg.AsyncConnection | None = None
        self.lock = asyncio.Lock()  # one job at a time on that connection
        self.jobs: list[tuple[Job, asyncio.Future[Any]]] = []
        self.wake = asyncio.Event()


class DatabaseUnavailable(Exception):
    """The database did not answer in time; the charger gets InternalError and retries."""


class Store:
    """Own the pool and the writers; run jobs in group commits."""

    def __init__(
        self,
        url: str,
        *,
        writers: int = 2,
        max_batch: int = 400,
        pool_size: int = 8,
        timeout: float = 5.0,
    ) -> None:
        self.pool = AsyncConnectionPool(
            url,
            min_size=4,  # the message writers, the command writer and one spare
            max_size=pool_size,
            open=False,
            timeout=timeout,  # how long a message waits for a connection before InternalError
            reconnect_timeout=0,  # keep trying for ever: chargers retry meanwhile
            name="ocpp-bridge",
        )
        self.max_batch = max_batch
        self._log_rows: list[LogRow] = []
        # Batches a writer has taken and not yet committed: close() waits for them too.
        self._in_flight = 0
        self._messages = _Lane("writer", writers, log_rows=True)
        self._commands = _Lane("commands", 1, log_rows=False, autocommit=True)
        self.url = url
        self.timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self.commits = 0
        self.retention_days = 30

    async def open(self) -> None:
        """Open the pool (without waiting for the database) and start the writers."""
        await self.pool.open(wait=False)
        self._tasks = [
            asyncio.create_task(self._write_loop(lane), name=f"{lane.name}-{n}")
            for lane in (self._messages, self._commands)
            for n in range(lane.writers)
        ]

    async def close(self) -> None:
        """Flush what is queued (briefly), stop the writers and close the pool."""
        deadline = asyncio.get_running_loop().time() + 3
        lanes = (self._messages, self._commands)
        while (
            self._log_rows or self._in_flight or any(lane.jobs for lane in lanes)
        ) and asyncio.get_running_loop().time() < deadline:
            for lane in lanes:
                lane.wake.set()
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lane in lanes:
            if lane.conn is not None:
                with contextlib.suppress(Exception):
                    await lane.conn.close()
                lane.conn = None
        await self.pool.close()

    async def run(self, job: Job) -> Any:
        """Queue `job` for the next group commit; return its result once committed."""
        return await self._queue(self._messages, job)

    async def run_command(self, job: Job) -> Any:
        """Like run(), in the commands' own lane: never behind charger messages. For claims and
        reads only, one statement each: a job that NOTIFYs would wait for the batches' commits.
        While the lane is idle the job runs at once in the caller's task (autocommit, one round
        trip, no hand-over to the writer); otherwise it queues for the lane's next group commit.
        """
        lane = self._commands
        if not lane.jobs and not lane.lock.locked():
            return await self._run_on_lane_connection(lane, job)
        return await self._queue(lane, job)

    async def run_alone(self, job: Job) -> Any:
        """Run `job` in a transaction of its own, now; return its result once committed."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                return await job(conn)
        except (psycopg.OperationalError, TimeoutError, PoolTimeout) as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def _queue(self, lane: _Lane, job: Job) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        lane.jobs.append((job, future))
        lane.wake.set()
        return await future

    def log(self, row: LogRow) -> None:
        """Queue a message-log row; it is written with the next batch (no waiting)."""
        self._log_rows.append(row)
        if len(self._log_rows) > MAX_PENDING_LOG_ROWS:
            del self._log_rows[: len(self._log_rows) - MAX_PENDING_LOG_ROWS]
        self._messages.wake.set()

    async def read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one read-only query outside the batches (at connect, before any job)."""
        try:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchall()
        except (psycopg.OperationalError, TimeoutError) as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    async def _write_loop(self, lane: _Lane) -> None:
        while True:
            await lane.wake.wait()
            lane.wake.clear()
            jobs = lane.jobs[: self.max_batch]
            del lane.jobs[: self.max_batch]
            rows: list[LogRow] = []
            if lane.log_rows:
                rows, self._log_rows = self._log_rows, []
            if lane.jobs:
                lane.wake.set()  # more than one batch queued: let the other writer start
            # Taken off the queues, not yet written: without the count, close() would see
            # nothing queued and cancel this write halfway, losing its rows.
            self._in_flight += 1
            try:
                if len(jobs) == 1 and lane.autocommit and not rows:
                    await self._run_autocommit(lane, jobs)
                elif jobs or rows:
                    await self._flush(jobs, rows)
            finally:
                self._in_flight -= 1

    async def _run_autocommit(
        self, lane: _Lane, jobs: list[tuple[Job, asyncio.Future[Any]]]
    ) -> None:
        """Run an autocommit lane's job alone, committed by itself: one round trip. (Several
        queued together go in one group commit instead, like the message batches.)"""
        for job, future in jobs:
            try:
                result = await self._run_on_lane_connection(lane, job)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def _run_on_lane_connection(self, lane: _Lane, job: Job) -> Any:
        async with lane.lock:
            try:
                if lane.conn is None or lane.conn.closed:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                    # cancellation that lands as the connect completes, which left a closed
                    # charger's command loop running and the bridge unable to stop.
                    async with asyncio.timeout(self.timeout):
                        lane.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                return await job(lane.conn)
            except (psycopg.OperationalError, TimeoutError) as exc:
                if lane.conn is not None:  # reconnect for the next job
                    with contextlib.suppress(Exception):
                        await lane.conn.close()
                    lane.conn = None
                raise DatabaseUnavailable(str(exc)) from exc

    async def _flush(self, jobs: list[tuple[Job, asyncio.Future[Any]]], rows: list[LogRow]) -> None:
        try:
            results = await self._commit(jobs, rows)
        except Exception as exc:
            lost_a_race = isinstance(exc, _RETRYABLE)
            if not lost_a_race and isinstance(
                exc, psycopg.OperationalError | TimeoutError | PoolTimeout
            ):
                # The database is away: fail the jobs (chargers retry), keep the log rows.
                self._log_rows[:0] = rows
                failure: Exception = DatabaseUnavailable(str(exc))
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(failure)
                log.warning("database unavailable: %s", exc)
                await asyncio.sleep(0.5)
                return
            await self._retry_one_by_one(jobs, rows)
            return
        for (_, future), result in zip(jobs, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _commit(
        self, jobs: list[tuple[Job, asyncio.Future[Any]]], rows: list[LogRow]
    ) -> list[Any]:
        copies: dict[str, list[tuple[Any, ...]]] = {}

        async def run_jobs() -> list[Any]:
            results = []
            for job, _ in jobs:
                if isinstance(job, Rows):  # written below, with its table's other rows
                    copies.setdefault(job.copy, []).extend(job.rows)
                    results.append(None)
                else:
                    results.append(await job(conn))
            return results

        async with self.pool.connection() as conn, conn.transaction():
            if sum(not isinstance(job, Rows) for job, _ in jobs) > 1:
                # Pipeline mode: a job's statement goes out without waiting for the answer to
                # the one before (a job that reads a result waits for it), which saves a round
                # trip per job that reads nothing; COPY cannot run in a pipeline.
                async with conn.pipeline():
                    results = await run_jobs()
            else:
                results = await run_jobs()
            for statement, table_rows in copies.items():
                await _copy(conn, statement, table_rows)
            if rows:
                await _copy(conn, _COPY_LOG, rows)
        self.commits += 1
        return results

    async def _retry_one_by_one(
        self, jobs: list[tuple[Job, asyncio.Future[Any]]], rows: list[LogRow]
    ) -> None:
        for job, future in jobs:
            try:
                (result,) = await self._commit([(job, future)], [])
            except Exception as exc:
                log.exception("job failed")
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
        if rows:
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    await conn.execute(
                        "SELECT cass_ocpp_message_partitions(%s, 3)", (self.retention_days,)
                    )
                    await _copy(conn, _COPY_LOG, rows)
            except Exception:
                log.exception("could not write %d message-log rows", len(rows))


async def _copy(conn: psycopg.AsyncConnection, statement: str, rows: list[Any]) -> None:
    async with conn.cursor().copy(statement) as copy:
        for row in rows:
            await copy.write_row(row)
