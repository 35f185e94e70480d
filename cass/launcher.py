"""`cass up`: the embedded database, migrations, demo data and the child processes."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from cass.config import ROOT, instance_dir

STOP_GRACE_SECONDS = 8


class LaunchError(RuntimeError):
    """A reason `cass up` cannot start; printed as one line."""


def check_port_free(port: int, what: str) -> None:
    """Raise LaunchError when `port` on 127.0.0.1 is already taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections lingering in TIME_WAIT do not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LaunchError(f"port {port} ({what}) is already in use: {exc.strerror}") from exc


def check_database(url: str) -> None:
    """Raise LaunchError when the database at `url` cannot be reached within 5 s."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LaunchError(f"cannot reach the database ({_redact(url)}): {reason}") from exc


def _redact(url: str) -> str:
    """Hide the password in a database URL."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, creds = head.partition("//")
    return f"{scheme}//{creds.split(':', 1)[0]}:***@{tail}"


def demo_secret(env_name: str, file_name: str) -> str:
    """Return a demo secret from the environment, or one kept in the instance folder."""
    value = os.environ.get(env_name)
    if value:
        return value
    path = instance_dir() / file_name
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    path.chmod(0o600)
    return value


@dataclass
class Supervisor:
    """Start child processes, and stop them all (then the database) on a signal or a death."""

    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopping: bool = False

    def start(self, name: str, argv: list[str]) -> None:
        """Start one child in its own process group."""
        self.children[name] = subprocess.Popen(argv, env=self.env, start_new_session=True)

    def _signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def wait(self) -> int:
        """Block until a signal or a child's death; then stop all and return the exit code."""
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)
        code = 0
        while not self.stopping:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    print(f"cass: {name} exited with code {proc.returncode}; stopping", flush=True)
                    self.stopping, code = True, 1
                    break
            time.sleep(0.2)
        self.stop()
        return code

    def stop(self) -> None:
        """Send SIGTERM to every child's group, then SIGKILL whatever is left after the grace."""
        for proc in self.children.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self.children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(2)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def child_commands(web_port: int, bridge_port: int, demo_chargers: int = 0) -> dict[str, list[str]]:
    """Return the argv of web (gunicorn), bridge and scheduler, and of the charger simulator
    when `demo_chargers` > 0 (its key comes from CASS_DEMO_CHARGER_KEY in the environment)."""
    py = sys.executable
    children = {
        "web": [
            py,
            "-m",
            "gunicorn",
            "--pythonpath",
            str(ROOT),
            "--bind",
            f"127.0.0.1:{web_port}",
            "--worker-class",
            "gthread",
            "--workers",
            "2",
            "--threads",
            "32",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            "wsgi:app",
        ],
        "bridge": [py, "-m", "ocpp_bridge", "--port", str(bridge_port)],
        "scheduler": [py, "-m", "cass", "scheduler"],
    }
    if demo_chargers > 0:
        children["simulator"] = [
            py,
            "-m",
            "ocpp_bridge.simulate",
            "--chargers",
            str(demo_chargers),
            "--url",
            f"ws://127.0.0.1:{bridge_port}",
            "--prefix",
            "DEMO-CP-",
        ]
    return children


def prometheus_dir() -> Path:
    """Return a fresh folder for gunicorn workers' shared metrics."""
    path = instance_dir() / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
