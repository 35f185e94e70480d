"""`python -m ocpp_bridge`: run the OCPP bridge."""

from __future__ import annotations

import asyncio
import gc
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


# The collector's generation thresholds (Python's default: 700, 10, 10). At 1,000 messages a
# second the default ran a young collection ~15 times a second and a full one every few seconds,
# each full one walking every object of every connection (hundreds of ms with 2,000 chargers,
# the bridge's worst pauses). Most of what a message allocates is gone before 20,000 new
# objects have piled up, so little is promoted and full collections become rare (minutes
# apart), while a young collection stays a pause of a few ms.
GC_THRESHOLDS = (20_000, 20, 10)


def tune_gc() -> None:
    """Move what startup made (modules, classes, schemas) out of the collector's way and
    collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> None:
    """Parse settings and run the bridge until SIGTERM or SIGINT."""
    config = BridgeConfig.from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bridge %(message)s")
    tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_forever(config))


if __name__ == "__main__":
    main()
