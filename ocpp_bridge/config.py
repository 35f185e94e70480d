"""The bridge's settings: command-line flags over environment variables over defaults."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field

SHARED_ENV = {"log_retention_days": "CASS_OCPP_LOG_RETENTION_DAYS"}


@dataclass
class BridgeConfig:
    """Everything the bridge needs to run; tests shorten the intervals."""

    database_url: str
    host: str = "127.0.0.1"
    port: int = 9000
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    certfile: str | None = None
    keyfile: str | None = None
    # Given to chargers in BootNotification; pending chargers retry their boot this often.
    heartbeat_interval: int = 60
    pending_retry_interval: int = 30
    # WebSocket pings find a charger that vanished without closing: after ping_interval +
    # ping_timeout its socket is failed, and after close_timeout more (the time a closing peer
    # gets to answer) it is closed and the charger offline: 70 s with these defaults.
    ping_interval: float = 30.0
    ping_timeout: float = 30.0
    close_timeout: float = 10.0
    # A socket that sends no frame for this long is closed (heartbeats stopped).
    idle_timeout: float = 150.0
    # Every touch_interval the bridge marks its sockets' chargers alive; any charger not marked
    # for offline_after seconds (its bridge died) is set offline by whichever bridge sweeps.
    touch_interval: float = 15.0
    offline_after: float = 90.0
    # How long the bridge waits for a charger's answer to a command.
    command_timeout: float = 30.0
    # Pending commands are also looked for this often, in case a notification was missed.
    command_poll_interval: float = 5.0
    # Frames a charger may send per second (and in a burst) before it is slowed down.
    rate_limit: float = 50.0
    rate_burst: float = 100.0
    max_frame_bytes: int = 65536
    log_retention_days: int = 30
    writers: int = 2
    pool_size: int = 8
    # How long a message waits for the database before the charger gets InternalError.
    db_timeout: float = 5.0

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> BridgeConfig:
        """Build the settings from the command line and the environment."""
        parser = argparse.ArgumentParser(
            prog="python -m ocpp_bridge", description="CASS OCPP bridge"
        )
        parser.add_argument("--host", default=os.environ.get("CASS_BRIDGE_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("CASS_BRIDGE_PORT", "9000"))
        )
        parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
        parser.add_argument("--instance-id", default=os.environ.get("CASS_BRIDGE_INSTANCE"))
        parser.add_argument("--certfile", help="serve wss:// with this certificate (PEM)")
        parser.add_argument("--keyfile", help="the certificate's private key (PEM)")
        defaults = cls(database_url="")
        for name in (
            "heartbeat_interval",
            "ping_interval",
            "ping_timeout",
            "close_timeout",
            "idle_timeout",
            "touch_interval",
            "offline_after",
            "command_timeout",
            "command_poll_interval",
            "rate_limit",
            "rate_burst",
            "log_retention_days",
            "db_timeout",
        ):
            value = getattr(defaults, name)
            # Retention is one setting shared with the scheduler's retention job.
            env = SHARED_ENV.get(name, "CASS_BRIDGE_" + name.upper())
            parser.add_argument(
                "--" + name.replace("_", "-"),
                type=type(value),
                default=type(value)(os.environ.get(env, value)),
                help=f"(default {value}; env {env})",
            )
        args = parser.parse_args(argv)
        if not args.database_url:
            parser.error("DATABASE_URL is not set (cass up and cass bridge set it for you)")
        if bool(args.certfile) != bool(args.keyfile):
            parser.error("--certfile and --keyfile go together")
        values = {k: v for k, v in vars(args).items() if v is not None}
        return cls(**values)
