"""`python -m bench.serve BUILD --port N`: serve one of the builds the bench assembles.

Only `bare` (`bench.apps`), `recipe` (`bench.recipe`) and `unbounded` (the real
service served with uvicorn's defaults, `bench.limits`) are assembled here; every other
build is the real service, `python -m dice_roller` (`bench.servers`). All three are
served by `uvicorn.run` with its defaults (uvloop, httptools, one worker) and no server
header, as the service was before `sandbox_telemetry.server` gave it limits. `bare`
configures no logging and writes no access line, so it writes nothing at all; the
common recipe keeps uvicorn's default logging config, plain-text access line included,
and its own JSON formatter for the roll line.
"""

from __future__ import annotations

import argparse
import signal
import sys

import uvicorn
from dice_roller.settings import load_settings

from .apps import BARE, build_bare_app
from .limits import UNBOUNDED, serve_unbounded
from .recipe import RECIPE, build_recipe_app, configure_recipe_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("build", choices=(BARE, RECIPE, UNBOUNDED))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(port=args.port)
    # A clean shutdown on SIGTERM exits with 0, as the service's does.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: None)
    if args.build == UNBOUNDED:
        serve_unbounded(settings, args.port)
    elif args.build == RECIPE:
        configure_recipe_logging(settings.log_level)
        # uvicorn's defaults: its own log config, its plain-text access line.
        uvicorn.run(
            build_recipe_app(settings), host="127.0.0.1", port=args.port, server_header=False
        )
    else:
        uvicorn.run(
            build_bare_app(settings),
            host="127.0.0.1",
            port=args.port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
