"""`python -m bench.serve VARIANT --port N`: serve one of the builds of `bench.apps`.

Served exactly as `dice_roller.cli` serves the real service: `uvicorn.run` with its
defaults (uvloop, httptools, one worker), no server header, and logging configured
by the service's `configure_logging` when the build has logs. Builds without logs
write nothing at all; none writes uvicorn's access line, since the service's own
request line replaces it (`dice_roller.request_log`). The common recipe
(`bench.recipe`) keeps uvicorn's default logging config, plain-text access line
included, and its own JSON formatter for the roll line.
"""

from __future__ import annotations

import argparse
import signal
import sys

import uvicorn
from dice_roller.logs import configure_logging
from dice_roller.settings import load_settings

from .apps import VARIANTS, build_app
from .recipe import RECIPE, build_recipe_app, configure_recipe_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("variant", choices=(*VARIANTS, RECIPE))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(port=args.port)
    # A clean shutdown on SIGTERM exits with 0, as the service's does.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: None)
    if args.variant == RECIPE:
        configure_recipe_logging(settings.log_level)
        # uvicorn's defaults: its own log config, its plain-text access line.
        uvicorn.run(
            build_recipe_app(settings), host="127.0.0.1", port=args.port, server_header=False
        )
        return 0
    logs = args.variant == "logs"
    if logs:
        configure_logging(settings.log_level)
    uvicorn.run(
        build_app(args.variant, settings),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
