"""`python -m bench.serve BUILD --port N`: serve one of the builds the bench assembles.

Only `bare` (`bench.apps`), `recipe` (`bench.recipe`), `unbounded` (the real
service served with uvicorn's defaults, `bench.limits`) and the die-service with its
dice's delays at 0 (`die-service`, `die-service-untraced`, see `serve_die_service`)
are assembled here; every other build is the real service, `python -m dice_roller`
(`bench.servers`). The first three are
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
from fastapi import FastAPI

from .apps import BARE, build_bare_app
from .limits import UNBOUNDED, serve_unbounded
from .recipe import RECIPE, build_recipe_app, configure_recipe_logging
from .servers import DIE_SERVICE_BUILDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("build", choices=(BARE, RECIPE, UNBOUNDED, *DIE_SERVICE_BUILDS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.build in DIE_SERVICE_BUILDS:  # its switches are in the environment already
        return serve_die_service(args.port)
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


def serve_die_service(port: int) -> int:
    """The die-service exactly as `python -m die_service` runs it (its settings,
    logging, server and app; in memory, or in PostgreSQL with DIE_SERVICE_DATABASE_URL),
    over its shipped dice with every delay at 0: the dice-roller in front of it rolls
    with the die's delay, and the hop bench measures the hop, not a wait of up to a
    second."""
    from die_service.cli import create_app_for
    from die_service.dice import SHIPPED_DICE
    from die_service.settings import Settings as DieServiceSettings
    from die_service.settings import load_settings as load_die_service_settings
    from sandbox_telemetry import run_service

    dice = [die.model_copy(update={"max_delay_seconds": 0.0}) for die in SHIPPED_DICE]

    def create_app(settings: DieServiceSettings) -> FastAPI:
        return create_app_for(settings, dice)

    return run_service(
        "python -m bench.serve die-service",
        "The die-service, its dice's delays at 0.",
        DieServiceSettings,
        "DIE_SERVICE_",
        load_die_service_settings,
        create_app,
        ["--host", "127.0.0.1", "--port", str(port)],
    )


if __name__ == "__main__":
    sys.exit(main())
