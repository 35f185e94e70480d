"""`python -m ocpp_bridge`: run the OCPP bridge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ocpp_bridge.config import BridgeConfig
from ocpp_bridge.server import serve_forever


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed: asyncio's API for a fraction of the CPU per
    socket event, which is most of what a bridge holding thousands of sockets does."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    """Parse settings and run the bridge until SIGTERM or SIGINT."""
    config = BridgeConfig.from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(message)s")
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_forever(config))


if __name__ == "__main__":
    main()
