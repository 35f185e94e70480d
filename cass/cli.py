"""The `cass` command: Flask's CLI (so `cass db upgrade` works) plus CASS's own commands."""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup

from cass import create_app
from cass.config import Config
from cass.launcher import (
    LaunchError,
    Supervisor,
    check_database,
    check_port_free,
    child_commands,
    demo_secret,
    prometheus_dir,
)
from cass.models.users import ROLES


def _app() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_app, add_version_option=False, load_dotenv=True)
def cli() -> None:
    """CASS, the Charger After-Service System."""


def _fail(message: str) -> None:
    click.echo(f"cass: {message}", err=True)
    sys.exit(1)


def _seed_if_empty(password: str, charger_key: str) -> bool:
    """Seed the demo data when no tenant exists; return whether it did."""
    from cass.services import demo
    from cass.tenancy import system_context

    with system_context():
        if demo.is_seeded():
            return False
        demo.seed_demo(password, charger_key)
        return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start_database() -> tuple[str, object | None]:
    """Return the database URL (and the embedded server's handle when we started one)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        check_database(url)
        return url, None
    from cass.embedded_db import ensure_database, start_embedded

    click.echo("cass: starting the embedded PostgreSQL (instance/pgdata)…")
    server = start_embedded()
    return ensure_database(server.get_uri()), server


@cli.command("up", with_appcontext=False)
@click.option(
    "--demo-chargers",
    type=click.IntRange(0, 12),
    default=0,
    show_default=True,
    help="Also run this many simulated demo chargers (DEMO-CP-0001…) against the bridge.",
)
def up(demo_chargers: int) -> None:
    """Start everything: database, migrations, demo data, web, bridge and scheduler."""
    config = Config()
    # Until the supervisor waits, SIGTERM interrupts like Ctrl-C, so a half-done start is undone.
    signal.signal(signal.SIGTERM, _interrupt)
    server = None
    supervisor = Supervisor(env={})
    code = 0
    try:
        try:
            check_port_free(config.CASS_WEB_PORT, "CASS_WEB_PORT, web")
            check_port_free(config.CASS_BRIDGE_PORT, "CASS_BRIDGE_PORT, bridge")
            url, server = _start_database()
        except LaunchError as exc:
            _fail(str(exc))
        except Exception as exc:  # e.g. the embedded server failed to start
            _fail(f"cannot start the database: {exc}")
        os.environ["DATABASE_URL"] = url
        password = demo_secret("CASS_DEMO_PASSWORD", "demo_password")
        charger_key = demo_secret("CASS_DEMO_CHARGER_KEY", "demo_charger_key")
        app = create_app(Config(DATABASE_URL=url))
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            seeded = _seed_if_empty(password, charger_key)
        supervisor.env = dict(
            os.environ,
            DATABASE_URL=url,
            CASS_INSTANCE_DIR=str(app.instance_path),
            SECRET_KEY=app.config["SECRET_KEY"],
            PROMETHEUS_MULTIPROC_DIR=str(prometheus_dir()),
        )
        if demo_chargers:
            supervisor.env["CASS_DEMO_CHARGER_KEY"] = charger_key  # the simulator's key
        children = child_commands(config.CASS_WEB_PORT, config.CASS_BRIDGE_PORT, demo_chargers)
        for name, argv in children.items():
            supervisor.start(name, argv)
        _print_banner(config, seeded, password, charger_key, demo_chargers)
        code = supervisor.wait()
    except KeyboardInterrupt:
        supervisor.stop()
    finally:
        if server is not None:
            server.cleanup()
    click.echo("cass: stopped.")
    sys.exit(code)


def _print_banner(
    config: Config, seeded: bool, password: str, charger_key: str, demo_chargers: int = 0
) -> None:
    from cass.services.demo import DEMO_USERS

    logins = ", ".join(email for people in DEMO_USERS.values() for email, _, _ in people)
    simulated = (
        f"  simulator: {demo_chargers} demo chargers (DEMO-CP-0001…DEMO-CP-{demo_chargers:04d})\n"
        if demo_chargers
        else ""
    )
    click.echo(
        "\nCASS is up.\n"
        f"  web     http://127.0.0.1:{config.CASS_WEB_PORT}/\n"
        f"  bridge  ws://127.0.0.1:{config.CASS_BRIDGE_PORT}/ocpp/<charge_point_id>\n"
        f"  demo data {'seeded now' if seeded else 'already present'}; logins: {logins}\n"
        f"  password: {password}    charger key (DEMO-CP-0001…): {charger_key}\n"
        f"{simulated}"
        "Press Ctrl-C to stop.\n",
    )
    sys.stdout.flush()


@cli.command("seed-demo")
def seed_demo_command() -> None:
    """Seed the demo tenants, users, vendor, sites and chargers (on an empty database)."""
    password = demo_secret("CASS_DEMO_PASSWORD", "demo_password")
    charger_key = demo_secret("CASS_DEMO_CHARGER_KEY", "demo_charger_key")
    if not _seed_if_empty(password, charger_key):
        _fail("the database already has tenants; demo data is seeded only on an empty database")
    click.echo(f"Demo data seeded. Password: {password}  Charger key: {charger_key}")


@cli.group("tenant")
def tenant_group() -> None:
    """Manage tenants."""


@tenant_group.command("create")
@click.argument("slug")
@click.argument("name")
@click.option("--key-prefix", help="Ticket key prefix, e.g. DEMO (default: the slug).")
def tenant_create(slug: str, name: str, key_prefix: str | None) -> None:
    """Create a tenant SLUG called NAME."""
    from cass.services.tenants import TenantError, create_tenant
    from cass.tenancy import system_context

    with system_context():
        try:
            tenant = create_tenant(slug, name, key_prefix)
        except TenantError as exc:
            _fail(str(exc))
        click.echo(f"Tenant {tenant.slug} ({tenant.name}) created, key prefix {tenant.key_prefix}.")


@cli.command("create-user")
@click.option("--tenant", "tenant_slug", required=True, help="The tenant's slug.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--vendor", "vendor_name", help="The vendor's name (for role vendor).")
@click.option("--password", envvar="CASS_NEW_USER_PASSWORD", help="Asked for when not given.")
def create_user_command(
    tenant_slug: str,
    email: str,
    name: str,
    role: str,
    vendor_name: str | None,
    password: str | None,
) -> None:
    """Create a user in a tenant."""
    from sqlalchemy import select

    from cass.extensions import db
    from cass.models import Vendor
    from cass.services.auth import MIN_PASSWORD
    from cass.services.tenants import tenant_by_slug
    from cass.services.users import UserError, create_user
    from cass.tenancy import system_context, tenant_context

    with system_context():
        tenant = tenant_by_slug(tenant_slug)
        if tenant is None:
            _fail(f"no tenant {tenant_slug!r}")
        tenant_id = tenant.id
    if password is None:
        password = getpass.getpass("Password: ")
    if len(password) < MIN_PASSWORD:
        _fail(f"the password needs at least {MIN_PASSWORD} characters")
    with tenant_context(tenant_id):
        vendor = None
        if vendor_name:
            vendor = db.session.scalar(select(Vendor).where(Vendor.name == vendor_name))
            if vendor is None:
                _fail(f"no vendor {vendor_name!r} in tenant {tenant_slug}")
        try:
            user = create_user(email, name, role, password, vendor)
        except UserError as exc:
            _fail(str(exc))
        click.echo(f"User {user.email} ({role}) created in {tenant_slug}.")


@cli.group("chargers")
def chargers_group() -> None:
    """Manage a tenant's chargers."""


@chargers_group.command("import")
@click.option("--tenant", "tenant_slug", required=True, help="The tenant's slug.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
def chargers_import(tenant_slug: str, file: str) -> None:
    """Import chargers from a CSV FILE: every line is checked, then all are imported or none.

    Columns: ocpp_id, site, manufacturer, model, serial, asset_tag, install_date, warranty_end,
    key (ocpp_id, site and key required; a missing site is created; the key is stored hashed).
    """
    from cass.services.charger_import import import_chargers
    from cass.services.tenants import tenant_by_slug
    from cass.tenancy import system_context, tenant_context

    with system_context():
        tenant = tenant_by_slug(tenant_slug)
        if tenant is None:
            _fail(f"no tenant {tenant_slug!r}")
        tenant_id = tenant.id
    with tenant_context(tenant_id):
        result = import_chargers(Path(file).read_bytes())
    if not result.ok:
        for error in result.errors:
            click.echo(f"{file}: {error}", err=True)
        if result.more_errors:
            click.echo(f"{file}: … and {result.more_errors} more", err=True)
        _fail(f"{file}: {result.error_count} problem(s); nothing imported")
    created = result.sites_created
    names = ", ".join(created[:10]) + (", …" if len(created) > 10 else "")
    sites = f"; new sites ({len(created)}): {names}" if created else ""
    click.echo(f"Imported {result.chargers} chargers into {tenant_slug}{sites}.")


@cli.group("openapi")
def openapi_group() -> None:
    """The JSON API's OpenAPI document."""


@openapi_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
def openapi_export(file: str) -> None:
    """Write the OpenAPI document of /api/v1 to FILE (- for standard output)."""
    from cass.api.v1 import spec_document

    text = json.dumps(spec_document(current_app), indent=2, sort_keys=False) + "\n"
    if file == "-":
        click.echo(text, nl=False)
        return
    Path(file).write_text(text, encoding="utf-8")
    click.echo(f"Wrote the OpenAPI document of /api/v1 to {file}.")


@cli.command("scheduler")
def scheduler_command() -> None:
    """Run the periodic jobs (each under a Postgres advisory lock)."""
    from cass.scheduler import run_scheduler

    run_scheduler()


@cli.command("bridge", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def bridge_command(ctx: click.Context) -> None:
    """Run the OCPP bridge on this instance's database (options as python -m ocpp_bridge)."""
    import asyncio
    import logging

    from cass.extensions import db
    from ocpp_bridge.config import BridgeConfig
    from ocpp_bridge.server import serve_forever

    with current_app.app_context():
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    config = BridgeConfig.from_args(["--database-url", url, *ctx.args])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(message)s")
    asyncio.run(serve_forever(config))


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def backup_command(file: Path) -> None:
    """Back up the database and the stored files (file:// storage) into one FILE."""
    import time

    from cass.backup import BackupError, create_backup

    started = time.monotonic()
    try:
        manifest = create_backup(current_app, file)
    except BackupError as exc:
        _fail(str(exc))
    counts = manifest["counts"]
    storage = manifest["storage"]
    files = (
        f"{counts['files']} files ({counts['file_bytes'] / 1048576:.1f} MB)"
        if storage["files_included"]
        else f"no files: {storage['kind']} storage is not included"
    )
    click.echo(
        f"Backed up {counts.get('tenant', 0)} tenants, {counts.get('ticket', 0)} tickets, "
        f"{counts.get('attachment', 0)} attachments and {files} to {file} "
        f"({file.stat().st_size / 1048576:.1f} MB, {time.monotonic() - started:.1f} s)."
    )


@cli.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace a database that already holds data.")
def restore_command(file: Path, yes: bool) -> None:
    """Restore a backup FILE into the database (and its files into the storage)."""
    from cass.backup import BackupError, restore_backup

    try:
        result = restore_backup(current_app, file, replace=yes)
    except BackupError as exc:
        _fail(str(exc))
    counts = result.manifest["counts"]
    click.echo(
        f"Restored the backup of {result.manifest['created_at']}: {counts.get('tenant', 0)} "
        f"tenants, {counts.get('ticket', 0)} tickets, {counts.get('attachment', 0)} "
        f"attachments, {result.files} files."
    )
    if not result.manifest["storage"]["files_included"]:
        click.echo("The backup holds no files (s3 storage): the bucket keeps them.")
    if result.upgraded_from:
        click.echo(f"Migrated from {', '.join(result.upgraded_from)} to the current schema.")


def _add_db_reset() -> None:
    """Add `reset` to Flask-Migrate's `db` group, beside upgrade, current, migrate…"""
    from flask.cli import with_appcontext
    from flask_migrate.cli import db as db_group

    @db_group.command("reset")
    @click.option("--yes", is_flag=True, help="Needed unless the database is the embedded one.")
    @click.option("--no-demo", is_flag=True, help="Leave the database empty (no demo data).")
    @with_appcontext
    def db_reset(yes: bool, no_demo: bool) -> None:
        """Drop everything in the database, migrate it afresh and seed the demo data."""
        from cass.backup import is_embedded, reset_database

        url = current_app.config["DATABASE_URL"]
        if not yes and not is_embedded(url):
            _fail("the database is not this folder's embedded one; give --yes to drop all its data")
        reset_database(current_app)
        if no_demo:
            click.echo("Database reset: migrated, empty.")
            return
        password = demo_secret("CASS_DEMO_PASSWORD", "demo_password")
        charger_key = demo_secret("CASS_DEMO_CHARGER_KEY", "demo_charger_key")
        _seed_if_empty(password, charger_key)
        click.echo(
            f"Database reset: migrated, demo data seeded. Password: {password}  "
            f"Charger key: {charger_key}"
        )


_add_db_reset()


def main() -> None:
    """Entry point of the `cass` console script."""
    cli(prog_name="cass")
