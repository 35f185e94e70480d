"""Free TCP ports for tests that start servers of their own."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    # Every socket stays bound until all are picked: a port picked and released at once can be
    # handed out again by the next bind (CI once got the same port for the web and the bridge).
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    """Return one TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]
