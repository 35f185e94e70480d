"""`python -m ocpp_bridge`: run the OCPP bridge."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from ocpp_bridge.server import serve_forever


def main() -> None:
    """Parse arguments and run the bridge until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m ocpp_bridge", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("CASS_BRIDGE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CASS_BRIDGE_PORT", "9000")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(message)s")
    asyncio.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
