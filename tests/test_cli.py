"""The `cass` command: Flask's CLI plus tenant create, create-user, seed-demo (points 1 and 3)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from cass.cli import cli
from cass.extensions import db
from cass.models import Charger, Connector, Site, Tenant, User, Vendor
from cass.tenancy import system_context
from tests.conftest import login


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(cli, list(args), **kwargs)

    return invoke


def test_console_script_lists_the_commands(database_url):
    env = dict(os.environ, DATABASE_URL=database_url)
    out = subprocess.run(
        [sys.executable, "-m", "cass", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    ).stdout
    for command in ("up", "seed-demo", "create-user", "tenant", "scheduler", "db"):
        assert command in out


def test_db_commands_come_from_flask_migrate(run):
    result = run("db", "current")
    assert result.exit_code == 0, result.output


def test_seed_demo_seeds_everything_once(app, run):
    result = run("seed-demo", env={"CASS_DEMO_PASSWORD": "seeded-password-1"})
    assert result.exit_code == 0, result.output
    with app.app_context(), system_context():
        assert {t.slug for t in db.session.scalars(select(Tenant))} == {"demo", "acme"}
        emails = set(db.session.scalars(select(User.email)))
        assert {
            "admin@demo.test",
            "manager@demo.test",
            "agent@demo.test",
            "engineer@demo.test",
            "vendor@demo.test",
            "viewer@demo.test",
            "admin@acme.test",
            "agent@acme.test",
        } == emails
        vendor_user = db.session.scalar(select(User).where(User.email == "vendor@demo.test"))
        assert db.session.get(Vendor, vendor_user.vendor_id).name == "Demo Field Services"
        ids = set(db.session.scalars(select(Charger.ocpp_id)))
        assert ids == {f"DEMO-CP-{n:04d}" for n in range(1, 13)} | {
            f"ACME-CP-{n:04d}" for n in range(1, 5)
        }
        assert len(db.session.scalars(select(Connector)).all()) == 32
        assert db.session.scalars(select(Site)).all()
    assert login(app.test_client(), "viewer@demo.test", "seeded-password-1").status_code == 303
    again = run("seed-demo")
    assert again.exit_code == 1 and "already has tenants" in again.output


def test_tenant_create_and_bad_input(app, run):
    ok = run("tenant", "create", "volt", "Volt Networks")
    assert ok.exit_code == 0 and "key prefix VOLT" in ok.output
    assert run("tenant", "create", "volt", "Again").exit_code == 1
    bad = run("tenant", "create", "Bad Slug!", "X")
    assert bad.exit_code == 1 and "slug" in bad.output
    with app.app_context(), system_context():
        assert [t.slug for t in db.session.scalars(select(Tenant))] == ["volt"]


def test_create_user(app, run, demo):
    result = run(
        "create-user",
        "--tenant",
        "acme",
        "--email",
        "Eng@Acme.test",
        "--name",
        "Acme Eng",
        "--role",
        "as_engineer",
        "--password",
        "long-enough-pw",
    )
    assert result.exit_code == 0, result.output
    assert login(app.test_client(), "eng@acme.test", "long-enough-pw").status_code == 303
    vendor = run(
        "create-user",
        "--tenant",
        "demo",
        "--email",
        "v2@demo.test",
        "--name",
        "V2",
        "--role",
        "vendor",
        "--vendor",
        "Demo Field Services",
        "--password",
        "long-enough-pw",
    )
    assert vendor.exit_code == 0, vendor.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nope"], "no tenant 'nope'"),
        (["--password", "short"], "at least 10 characters"),
        (["--email", "agent@demo.test"], "already exists"),
        (["--role", "vendor"], "A vendor user needs a vendor."),
        (["--role", "vendor", "--vendor", "Acme Field Crew"], "no vendor 'Acme Field Crew'"),
    ],
)
def test_create_user_bad_input(app, run, demo, args, message):
    base = {
        "--tenant": "demo",
        "--email": "x@demo.test",
        "--name": "X",
        "--role": "viewer",
        "--password": "long-enough-pw",
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [part for pair in base.items() for part in pair]
    with app.app_context(), system_context():
        before = len(db.session.scalars(select(User)).all())
    result = run("create-user", *flat)
    assert result.exit_code == 1 and message in result.output
    with app.app_context(), system_context():
        assert len(db.session.scalars(select(User)).all()) == before
