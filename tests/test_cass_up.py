"""`cass up` as a user runs it: a real subprocess on an empty folder, then a restart, then the
ways it refuses to start. Every test kills whatever it started, even when it fails."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import CSRF_RE
from tests.net import free_port, free_ports

pytestmark = pytest.mark.slow

PASSWORD = "cass-up-test-password"
CHARGER_KEY = "cass-up-charger-key"
READY_TIMEOUT = 90
STOP_TIMEOUT = 15
FAIL_TIMEOUT = 20


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on `port` (as the servers and cass up bind it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _mentions(proc: psutil.Process, workdir: Path, ports: tuple[int, ...]) -> bool:
    """Whether a process runs in `workdir` or names it or one of `ports` on its command line."""
    try:
        cmdline = proc.cmdline()
        try:
            cwd = proc.cwd()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            cwd = ""
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if cwd == str(workdir) or cwd.startswith(f"{workdir}/"):
        return True
    if any(str(workdir) in arg for arg in cmdline):
        return True
    return any(arg == str(p) or arg.endswith(f":{p}") for arg in cmdline for p in ports)


def leftovers(workdir: Path, ports: tuple[int, ...]) -> list[psutil.Process]:
    """Live processes (not this one) that belong to a `cass up` run in `workdir`."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me or not _alive(proc):
            continue
        if _mentions(proc, workdir, ports):
            found.append(proc)
    return found


def _alive(proc: psutil.Process) -> bool:
    """Whether `proc` still runs (a zombie has exited; only its parent has not reaped it)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _cmd(proc: psutil.Process) -> str:
    """The command line of `proc`, or "" when it is gone or hidden."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _describe(procs: list[psutil.Process]) -> list[str]:
    return [f"{proc.pid}: {_cmd(proc)}" for proc in procs]


@dataclass
class Run:
    """One `cass up` process and where its output goes."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def logs(self) -> str:
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"


@dataclass
class Launcher:
    """Starts `cass up` in a fresh folder on free ports; kills everything left at teardown."""

    workdir: Path
    web_port: int = field(init=False)
    bridge_port: int = field(init=False)
    runs: list[Run] = field(default_factory=list)
    seen: list[psutil.Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.web_port, self.bridge_port = free_ports(2)  # distinct: picked together

    @property
    def ports(self) -> tuple[int, int]:
        return (self.web_port, self.bridge_port)

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def bridge(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("DATABASE_URL", "CASS_INSTANCE_DIR", "SECRET_KEY", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        env.update(
            CASS_WEB_PORT=str(self.web_port),
            CASS_BRIDGE_PORT=str(self.bridge_port),
            CASS_DEMO_PASSWORD=PASSWORD,
            CASS_DEMO_CHARGER_KEY=CHARGER_KEY,
        )
        env.update(overrides)
        return env

    def start(self, **env: str) -> Run:
        n = len(self.runs)
        out, err = self.workdir / f"up{n}.out", self.workdir / f"up{n}.err"
        with out.open("wb") as out_f, err.open("wb") as err_f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cass", "up"],
                cwd=self.workdir,
                env=self.env(**env),
                stdin=subprocess.DEVNULL,
                stdout=out_f,
                stderr=err_f,
                start_new_session=True,  # a Ctrl-C on pytest reaches it only via teardown
            )
        run = Run(proc, out, err)
        self.runs.append(run)
        return run

    def wait_ready(self, run: Run) -> None:
        """Wait for 200 from the web's /readyz and the bridge's /healthz, and for the banner."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if run.proc.poll() is not None:
                pytest.fail(f"cass up exited with {run.proc.returncode} early\n{run.logs()}")
            try:
                ready = (
                    requests.get(f"{self.web}/readyz", timeout=2).status_code == 200
                    and requests.get(f"{self.bridge}/healthz", timeout=2).status_code == 200
                )
            except requests.RequestException:
                ready = False
            if ready and "Press Ctrl-C to stop." in run.stdout():
                return
            time.sleep(0.3)
        pytest.fail(f"cass up not ready within {READY_TIMEOUT} s\n{run.logs()}")

    def children(self, run: Run) -> list[psutil.Process]:
        """Record (for teardown too) the processes `cass up` started."""
        procs = psutil.Process(run.proc.pid).children(recursive=True)
        self.seen.extend(procs)
        return procs

    def kill_all(self) -> None:
        for run in self.runs:
            if run.proc.poll() is None:
                run.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.proc.wait(10)
        procs = [p for p in self.seen if _alive(p)] + leftovers(self.workdir, self.ports)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    # A short path: PostgreSQL's Unix socket lives in pgdata and socket paths are limited.
    workdir = Path(tempfile.mkdtemp(prefix="cassup-")).resolve()
    launcher = Launcher(workdir)
    try:
        yield launcher
    finally:
        launcher.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


def sign_in(base: str, email: str = "agent@demo.test", password: str = PASSWORD):
    """Sign in through the form over HTTP; return the session and the home page's HTML."""
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=10)
    assert page.status_code == 200
    match = CSRF_RE.search(page.text)
    assert match, "no csrf_token field on /login"
    response = session.post(
        f"{base}/login",
        data={"csrf_token": match.group(1), "email": email, "password": password},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303, response.text[:500]
    home = session.get(f"{base}/", allow_redirects=False, timeout=10)
    assert home.status_code == 200
    return session, home.text


def stop(launcher: Launcher, run: Run, signum: int) -> None:
    """Send `signum`; assert a clean exit that leaves no process and frees both ports."""
    children = launcher.children(run)
    kinds = " ".join(_cmd(p) for p in children)
    for kind in ("gunicorn", "ocpp_bridge", "cass scheduler"):
        assert kind in kinds, f"no {kind} child among {_describe(children)}"
    pgdata = launcher.workdir / "instance" / "pgdata"
    assert any(str(pgdata) in _cmd(p) for p in psutil.process_iter()), (
        "no postgres on the instance's pgdata while cass up runs"
    )

    run.proc.send_signal(signum)
    try:
        code = run.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cass up still running {STOP_TIMEOUT} s after {signum!r}\n{run.logs()}")
    assert code == 0, run.logs()
    assert "cass: stopped." in run.stdout()

    still = [p for p in children if _alive(p)]
    assert not still, f"children left running: {_describe(still)}"
    postgres = [p for p in leftovers(launcher.workdir, launcher.ports) if str(pgdata) in _cmd(p)]
    assert not postgres, f"postgres left running: {_describe(postgres)}"
    others = leftovers(launcher.workdir, launcher.ports)
    assert not others, f"processes left running: {_describe(others)}"
    for port in launcher.ports:
        assert port_is_free(port), f"port {port} still taken after cass up stopped"


def test_up_serves_stops_and_restarts_on_the_same_data(launcher: Launcher) -> None:
    # First start, on an empty folder: embedded database, migrations, demo data, three children.
    run = launcher.start()
    launcher.wait_ready(run)
    banner = run.stdout()
    assert f"web     http://127.0.0.1:{launcher.web_port}/" in banner
    assert f"bridge  ws://127.0.0.1:{launcher.bridge_port}/ocpp/<charge_point_id>" in banner
    assert "demo data seeded now" in banner
    assert "admin@demo.test" in banner and "agent@demo.test" in banner
    assert f"password: {PASSWORD}" in banner and CHARGER_KEY in banner
    assert (launcher.workdir / "instance" / "pgdata" / "PG_VERSION").exists()

    health = requests.get(f"{launcher.bridge}/healthz", timeout=5)
    assert health.status_code == 200

    session, home = sign_in(launcher.web)
    assert "DEMO-CP-0001" in home

    url = f"ws://127.0.0.1:{launcher.bridge_port}/ocpp/DEMO-CP-0001"
    with pytest.raises(InvalidStatus) as refused:  # no key, no OCPP
        connect(url, subprotocols=["ocpp1.6"], open_timeout=10)
    assert refused.value.response.status_code == 401
    auth = "Basic " + base64.b64encode(f"DEMO-CP-0001:{CHARGER_KEY}".encode()).decode()
    with connect(
        url, subprotocols=["ocpp1.6"], open_timeout=10, additional_headers={"Authorization": auth}
    ) as ws:
        assert ws.subprotocol == "ocpp1.6"
        ws.send(json.dumps([2, "msg-1", "Heartbeat", {}]))
        answer = json.loads(ws.recv(timeout=10))
    # The bridge answered from the database: an OCPP session, not just a socket.
    assert answer[0] == 3 and answer[1] == "msg-1" and "currentTime" in answer[2], answer

    # Another cass command in the same folder uses the running database, and leaves it running.
    def create_zeta() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "cass", "tenant", "create", "zeta", "Zeta Charging"]
        return subprocess.run(
            argv,
            cwd=launcher.workdir,
            env=launcher.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = create_zeta()
    assert first.returncode == 0, first.stderr
    again = create_zeta()
    assert again.returncode == 1 and "already exists" in again.stderr
    assert requests.get(f"{launcher.web}/readyz", timeout=5).status_code == 200

    stop(launcher, run, signal.SIGINT)

    # Second start on the same folder: the data (and the session key) survive.
    run = launcher.start()
    launcher.wait_ready(run)
    assert "demo data already present" in run.stdout()
    assert "seeded now" not in run.stdout()
    old_session_home = session.get(f"{launcher.web}/", allow_redirects=False, timeout=10)
    assert old_session_home.status_code == 200, "the session did not survive the restart"
    _, home = sign_in(launcher.web, "admin@demo.test")
    assert "DEMO-CP-0001" in home

    stop(launcher, run, signal.SIGTERM)


def _one_cass_line(run: Run) -> str:
    try:
        code = run.proc.wait(FAIL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cass up did not give up within {FAIL_TIMEOUT} s\n{run.logs()}")
    assert code != 0, run.logs()
    stderr = run.stderr()
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("cass:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("which", ["web", "bridge"])
def test_up_refuses_a_taken_port(launcher: Launcher, which: str) -> None:
    port = launcher.web_port if which == "web" else launcher.bridge_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        line = _one_cass_line(launcher.start())
    assert str(port) in line and "in use" in line, line
    # It gave up before starting the database.
    assert not (launcher.workdir / "instance" / "pgdata").exists()


def test_up_refuses_an_unreachable_database(launcher: Launcher) -> None:
    url = f"postgresql://cass:s3cret-pw@127.0.0.1:{free_port()}/cass"
    line = _one_cass_line(launcher.start(DATABASE_URL=url))
    assert line.startswith("cass: cannot reach the database"), line
    assert "s3cret-pw" not in launcher.runs[0].stderr() + launcher.runs[0].stdout()
    assert not (launcher.workdir / "instance" / "pgdata").exists()
