"""`python -m ocpp_bridge`: run the OCPP bridge."""

from __future__ import annotations

import asyncio
import logging

from ocpp_bridge.config import BridgeConfig
from ocpp_bridge.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    """Parse settings and run the bridge until SIGTERM or SIGINT."""
    config = BridgeConfig.from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(message)s")
    asyncio.run(serve_forever(config))


if __name__ == "__main__":
    main()
