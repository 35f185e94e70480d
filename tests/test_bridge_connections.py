"""Charger connections: subprotocols, Basic auth, unknown ids, auto-registration, replacement,
health, wss and `cass bridge` (issue 4, point 1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import ssl
import subprocess
import sys
import time

import pytest
import requests
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import CHARGER_KEY
from tests.net import free_port
from tests.ocpp_support import (
    Charger16,
    execute,
    open_socket,
    query,
    running_bridge,
    serving,
)


def refused_status(url: str, cp_id: str, **kwargs) -> int:
    async def attempt() -> int:
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(url, cp_id, **kwargs)
        return refused.value.response.status_code

    return asyncio.run(attempt())


def test_health_answers_on_the_bridge_port(database_url, demo):
    with running_bridge(database_url) as bridge:
        response = requests.get(f"http://127.0.0.1:{bridge.port}/healthz", timeout=5)
        assert response.status_code == 200 and response.text == "ok\n"
        assert requests.get(f"http://127.0.0.1:{bridge.port}/other", timeout=5).status_code == 404


def test_handshakes_are_refused_before_any_ocpp_traffic(database_url, demo):
    with running_bridge(database_url) as bridge:
        url = bridge.url
        assert refused_status(url, "DEMO-CP-0001", key=None) == 401  # no credentials
        assert refused_status(url, "DEMO-CP-0001", key="wrong-key-000000") == 401
        assert refused_status(url, "DEMO-CP-0002", key="") == 401
        assert refused_status(url, "NOBODY-CP-1") == 404  # unknown id
        assert refused_status(url, "DEMO-CP-0001", protocol="ocpp1.5") == 400  # no common one
        assert refused_status(url, "DEMO-CP-0001", protocol=None) == 400  # none offered
        assert refused_status(url, "bad/id") == 404
    # Nothing was logged or marked online for any of them.
    assert query(database_url, "SELECT count(*) FROM ocpp_message") == [(0,)]
    assert query(database_url, "SELECT count(*) FROM charger WHERE online") == [(0,)]


def test_another_chargers_key_does_not_open_this_one(database_url, demo):
    """The Basic-auth user must be the charge point id of the URL."""

    async def attempt(url: str) -> int:
        from websockets.asyncio.client import connect

        from tests.ocpp_support import basic_auth

        with pytest.raises(InvalidStatus) as refused:
            await connect(
                f"{url}/ocpp/DEMO-CP-0001",
                subprotocols=["ocpp1.6"],
                additional_headers=basic_auth("DEMO-CP-0002", CHARGER_KEY),
            )
        return refused.value.response.status_code

    with running_bridge(database_url) as bridge:
        assert asyncio.run(attempt(bridge.url)) == 401


def test_both_subprotocols_are_offered(database_url, demo):
    async def scenario(url: str) -> list[str]:
        chosen = []
        for protocol in ("ocpp1.6", "ocpp2.0.1"):
            ws = await open_socket(url, "DEMO-CP-0003", protocol=protocol)
            chosen.append(ws.subprotocol)
            await ws.close()
        return chosen

    with running_bridge(database_url) as bridge:
        assert asyncio.run(scenario(bridge.url)) == ["ocpp1.6", "ocpp2.0.1"]
    assert query(
        database_url, "SELECT ocpp_protocol FROM charger WHERE ocpp_id = 'DEMO-CP-0003'"
    ) == [("ocpp2.0.1",)]


def test_auto_registration_makes_a_pending_charger_until_an_admin_accepts(database_url, demo):
    execute(
        database_url,
        "UPDATE tenant SET ocpp_autoregister_prefix = 'NEW-' WHERE slug = 'demo'",
    )
    key = "a-new-chargers-key-0001"

    async def boot(url: str, key: str = key) -> tuple[str, int, object]:
        ws = await open_socket(url, "NEW-CP-7", key=key)
        cp = Charger16("NEW-CP-7", ws)
        task = await serving(cp)
        answer = await cp.call(call.BootNotification("Model-Z", "Vendor-Z"))
        # Before acceptance a pending charger may only boot and heartbeat.
        with pytest.raises(Exception) as refused:
            await cp.call(call.StatusNotification(1, "NoError", "Available"), suppress=False)
        task.cancel()
        await ws.close()
        return answer.status, answer.interval, refused.value

    async def boot_accepted(url: str) -> str:
        ws = await open_socket(url, "NEW-CP-7", key=key)
        cp = Charger16("NEW-CP-7", ws)
        task = await serving(cp)
        answer = await cp.call(call.BootNotification("Model-Z", "Vendor-Z"))
        await cp.call(call.StatusNotification(1, "NoError", "Available"))
        task.cancel()
        await ws.close()
        return answer.status

    with running_bridge(database_url) as bridge:
        # A prefix nobody auto-registers stays unknown.
        assert refused_status(bridge.url, "OTHER-CP-1", key=key) == 404
        # A key shorter than 16 characters is not trusted on first use.
        assert refused_status(bridge.url, "NEW-CP-8", key="short") == 404
        status, interval, refused = asyncio.run(boot(bridge.url))
        assert status == "Pending" and interval == 30
        assert getattr(refused, "code", None) == "SecurityError"
        row = query(
            database_url,
            "SELECT c.registration, c.tenant_id, s.name FROM charger c "
            "JOIN site s ON s.id = c.site_id WHERE c.ocpp_id = 'NEW-CP-7'",
        )
        assert row == [("pending", demo["demo"], "Auto-registered")]
        # Its first key is now its key.
        assert refused_status(bridge.url, "NEW-CP-7", key="another-key-00000000") == 401
        execute(database_url, "UPDATE charger SET registration = 'accepted' WHERE ocpp_id = %s",
                ("NEW-CP-7",))  # fmt: skip
        assert asyncio.run(boot_accepted(bridge.url)) == "Accepted"


def test_a_rejected_charger_is_told_so_at_boot(database_url, demo):
    execute(database_url, "UPDATE charger SET registration = 'rejected' WHERE ocpp_id = %s",
            ("DEMO-CP-0004",))  # fmt: skip

    async def boot(url: str) -> str:
        ws = await open_socket(url, "DEMO-CP-0004")
        cp = Charger16("DEMO-CP-0004", ws)
        task = await serving(cp)
        answer = await cp.call(call.BootNotification("M", "V"))
        task.cancel()
        await ws.close()
        return answer.status

    with running_bridge(database_url) as bridge:
        assert asyncio.run(boot(bridge.url)) == "Rejected"


def test_a_newer_connection_replaces_the_older_one(database_url, demo):
    async def scenario(url: str) -> tuple[int | None, str]:
        first = await open_socket(url, "DEMO-CP-0005")
        second = await open_socket(url, "DEMO-CP-0005")
        try:
            await asyncio.wait_for(first.recv(), 5)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        cp = Charger16("DEMO-CP-0005", second)
        task = await serving(cp)
        answer = await cp.call(call.Heartbeat())
        task.cancel()
        await second.close()
        return code, answer.current_time

    with running_bridge(database_url) as bridge:
        code, current_time = asyncio.run(scenario(bridge.url))
        assert code == 1000 and current_time
    events = query(
        database_url,
        "SELECT kind FROM charger_event WHERE charger_id = %s ORDER BY id",
        (demo["DEMO-CP-0005"],),
    )
    # The replaced socket closing does not mark the charger offline: one online, one offline.
    assert [e[0] for e in events] == ["online", "offline"]


def self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


def test_wss_with_a_certificate(database_url, demo, tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    client_tls = ssl.create_default_context(cafile=certfile)

    async def scenario(port: int) -> str:
        ws = await open_socket(f"wss://localhost:{port}", "DEMO-CP-0006", ssl=client_tls)
        cp = Charger16("DEMO-CP-0006", ws)
        task = await serving(cp)
        answer = await cp.call(call.Heartbeat())
        task.cancel()
        await ws.close()
        return answer.current_time

    with running_bridge(database_url, certfile=certfile, keyfile=keyfile) as bridge:
        assert asyncio.run(scenario(bridge.port))


@pytest.mark.slow
def test_cass_bridge_command_serves_until_sigterm(database_url, demo, tmp_path):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, CASS_INSTANCE_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cass", "bridge", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, proc.stdout.read1().decode()  # type: ignore[union-attr]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_python_m_ocpp_bridge_without_a_database_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "ocpp_bridge"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr
