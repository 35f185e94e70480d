"""Layout and packaging (point 1): the app factory, unbound extensions, blueprints, wsgi."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from cass.config import ROOT


def test_top_level_layout():
    for name in (
        "cass",
        "templates",
        "static",
        "migrations",
        "ocpp_bridge",
        "tests",
        "wsgi.py",
        "pyproject.toml",
        "README.md",
        ".ci/run",
    ):
        assert (ROOT / name).exists(), name


def test_one_blueprint_per_area(app):
    assert {"auth", "main", "admin", "health"} <= set(app.blueprints)


def test_extensions_are_created_unbound():
    code = (
        "from cass import extensions as e; from flask import has_app_context; "
        "assert not has_app_context(); assert e.db.Model is not None; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_wsgi_exposes_app(database_url):
    code = "import wsgi, flask; assert isinstance(wsgi.app, flask.Flask); print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DATABASE_URL": database_url, "SECRET_KEY": "x", "PATH": ""},
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_pyproject_declares_the_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"]).lower()
    for package in (
        "flask",
        "htmx-flask",
        "flask-sqlalchemy",
        "flask-login",
        "flask-wtf",
        "psycopg",
        "apscheduler",
        "websockets",
        "ocpp",
        "flask-migrate",
        "pgserver",
        "gunicorn",
        "prometheus-client",
        "argon2-cffi",
    ):
        assert package in deps, package
    test_deps = " ".join(project["optional-dependencies"]["test"]).lower()
    assert "pytest" in test_deps and "playwright" in test_deps
    assert project["scripts"]["cass"] == "cass.cli:main"


def test_vendored_front_end_files_carry_their_version():
    names = {p.name for p in (ROOT / "static" / "js").iterdir()}
    assert "htmx-2.0.11.min.js" in names and "htmx-ext-sse-2.2.4.min.js" in names
