"""The workflow worker: feeds charger and CSMS events to the workflow rules as they arrive.

A thread of the scheduler process. It LISTENs on the live channel, where the bridge announces
every connector status change and every charger going online or offline; each such
announcement (or a CSMS one) makes it drain the unhandled-events queues (the partial indexes on
`handled_at IS NULL`). A poll every few seconds catches what no announcement covers (firmware
status, a lost connection). Claims are `FOR UPDATE SKIP LOCKED`, so any number of workers, in
any number of scheduler copies, take each event once.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import TYPE_CHECKING

import psycopg

from cass.live import CHANNEL

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("cass.workflow")

APPLICATION_NAME = "cass-workflow"
# Live events that may mean new work: a charger's status or presence, a CSMS event.
WAKING_KINDS = frozenset({"charger", "csms", "csms_event"})


def wakes(payload: str) -> bool:
    """Return whether a live-channel payload announces something the rules may care about."""
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("kind") in WAKING_KINDS


class WorkflowWorker:
    """One thread: LISTEN, drain the event queues on each announcement, and poll as a fallback."""

    def __init__(
        self,
        app: Flask,
        *,
        poll_interval: float = 3.0,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        name: str = "cass-workflow",
    ) -> None:
        self.app = app
        self.poll_interval = poll_interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.name = name
        self.processed = 0  # events fed to the rules so far
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after the event in hand (an event is never left half done)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_listening(self, timeout: float) -> bool:
        """Block until the LISTEN connection is up (or `timeout`); return whether it is."""
        return self._listening.wait(timeout)

    def drain(self) -> int:
        """Process every unhandled event now; return how many."""
        from cass.services.workflow import process_next_charger_event, process_next_csms_event

        done = 0
        with self.app.app_context():
            while not self._stop.is_set():
                progressed = False
                for process in (process_next_charger_event, process_next_csms_event):
                    if process():
                        done, progressed = done + 1, True
                        self.processed += 1
                if not progressed:
                    break
        return done

    def _run(self) -> None:
        delay = self.min_backoff
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._listen()
            except Exception as exc:  # the thread outlives any failure, or faults go unseen
                log.warning("workflow: worker failed (%s); restarting", exc)
            finally:
                self._listening.clear()
            if self._stop.is_set():
                return
            if time.monotonic() - started > self.max_backoff:
                delay = self.min_backoff
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_backoff)

    def _listen(self) -> None:
        with psycopg.connect(
            self.app.config["DATABASE_URL"],
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._listening.set()
            self.drain()  # whatever arrived while nobody listened
            last_drain = time.monotonic()
            while not self._stop.is_set():
                woken = False
                # A short wait keeps stop() responsive; announcements end it at once.
                for note in conn.notifies(timeout=0.5):
                    if wakes(note.payload):
                        woken = True
                        break
                now = time.monotonic()
                if woken or now - last_drain >= self.poll_interval:
                    self.drain()
                    last_drain = time.monotonic()
                    if not woken:
                        conn.execute("SELECT 1")  # a dead socket shows here, not never
