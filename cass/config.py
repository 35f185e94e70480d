"""Settings, read from the environment (and a `.env` file when present)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

from cass.pool import RECYCLE_SECONDS

ROOT = Path(__file__).resolve().parent.parent


def instance_dir() -> Path:
    """Return the folder holding local state (embedded database, files); `./instance` by default."""
    return Path(os.environ.get("CASS_INSTANCE_DIR", "instance")).resolve()


def _secret_key() -> str:
    """Return SECRET_KEY, or one kept in the instance folder so sessions survive restarts."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = instance_dir() / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def sqlalchemy_url(url: str) -> str:
    """Return the SQLAlchemy form of a libpq URL, always on the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://")


class Config:
    """Configuration for create_app(); every value can come from the environment."""

    def __init__(self, **overrides: object) -> None:
        load_dotenv(Path.cwd() / ".env")
        self.SECRET_KEY = _secret_key()
        self.DATABASE_URL = os.environ.get("DATABASE_URL", "")
        # No pool_pre_ping: a round trip per request; cass.pool checks connections for free.
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_recycle": RECYCLE_SECONDS}
        # The role the web serves requests as; it never bypasses row-level security.
        self.CASS_APP_DB_ROLE = os.environ.get("CASS_APP_DB_ROLE", "cass_app")
        self.CASS_WEB_PORT = int(os.environ.get("CASS_WEB_PORT", "8000"))
        self.CASS_BRIDGE_PORT = int(os.environ.get("CASS_BRIDGE_PORT", "9000"))
        self.CASS_STORAGE_URL = os.environ.get("CASS_STORAGE_URL", "file://instance/files")
        self.SMTP_URL = os.environ.get("SMTP_URL", "")
        self.CASS_MAIL_FROM = os.environ.get("CASS_MAIL_FROM", "CASS <cass@localhost>")
        # Links in e-mails point here (the scheduler has no request to take the host from).
        self.CASS_BASE_URL = os.environ.get("CASS_BASE_URL", "http://localhost:8000")
        # How often the scheduler sweeps SLA clocks and delivers notifications (seconds).
        self.CASS_SLA_SWEEP_SECONDS = int(os.environ.get("CASS_SLA_SWEEP_SECONDS", "30"))
        self.CASS_NOTIFY_SECONDS = int(os.environ.get("CASS_NOTIFY_SECONDS", "15"))
        # How often the scheduler looks for due schedules and queued exports (seconds), and how
        # many days an export file is kept unless its schedule says otherwise.
        self.CASS_EXPORT_SECONDS = int(os.environ.get("CASS_EXPORT_SECONDS", "10"))
        self.CASS_EXPORT_RETENTION_DAYS = int(os.environ.get("CASS_EXPORT_RETENTION_DAYS", "30"))
        # Outbound webhooks: how often the scheduler delivers (seconds), each request's timeout
        # (seconds), parallel requests per run, days the delivery log is kept, and whether
        # endpoints may resolve to private, loopback or link-local addresses (off: an admin's
        # URL must not reach into the operator's own network).
        self.CASS_WEBHOOK_SECONDS = int(os.environ.get("CASS_WEBHOOK_SECONDS", "5"))
        self.CASS_WEBHOOK_TIMEOUT = float(os.environ.get("CASS_WEBHOOK_TIMEOUT", "5"))
        self.CASS_WEBHOOK_CONCURRENCY = int(os.environ.get("CASS_WEBHOOK_CONCURRENCY", "8"))
        self.CASS_WEBHOOK_RETENTION_DAYS = int(os.environ.get("CASS_WEBHOOK_RETENTION_DAYS", "30"))
        self.CASS_WEBHOOK_ALLOW_PRIVATE = os.environ.get("CASS_WEBHOOK_ALLOW_PRIVATE", "") == "1"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = os.environ.get("CASS_SECURE_COOKIES", "") == "1"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_DURATION = 60 * 60 * 24 * 14
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.WTF_CSRF_HEADERS = ["X-CSRFToken"]
        self.LOGIN_MAX_FAILURES = int(os.environ.get("CASS_LOGIN_MAX_FAILURES", "10"))
        self.LOGIN_WINDOW_MINUTES = int(os.environ.get("CASS_LOGIN_WINDOW_MINUTES", "15"))
        self.CASS_MAX_UPLOAD_MB = int(os.environ.get("CASS_MAX_UPLOAD_MB", "20"))
        # Days of OCPP frames kept in the message log (whole daily partitions are dropped).
        self.CASS_OCPP_LOG_RETENTION_DAYS = int(
            os.environ.get("CASS_OCPP_LOG_RETENTION_DAYS", "30")
        )
        # Calls one API token may make per window (fixed windows of CASS_API_RATE_WINDOW seconds).
        self.CASS_API_RATE_LIMIT = int(os.environ.get("CASS_API_RATE_LIMIT", "600"))
        self.CASS_API_RATE_WINDOW = int(os.environ.get("CASS_API_RATE_WINDOW", "60"))
        # flask-smorest builds /api/v1/openapi.json from the API's schemas (cass.api.v1).
        self.API_TITLE = "CASS API"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # Room for the form fields around the file; the file itself is checked against the limit.
        self.MAX_CONTENT_LENGTH = (self.CASS_MAX_UPLOAD_MB + 1) * 1024 * 1024
        for key, value in overrides.items():
            setattr(self, key, value)
