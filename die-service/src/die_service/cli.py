"""The `die-service` command: read the settings, set up logging, serve."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fastapi import FastAPI
from sandbox_telemetry import run_service

from .settings import Settings, load_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, prog: str = "die-service") -> int:
    """The command; `prog` names it in its usage line: `python -m` passes its own."""
    return run_service(
        prog,
        "Serve the dice's specifications: faces, failure rate and latency of each die.",
        Settings,
        "DIE_SERVICE_",
        load_settings,
        _create_app,
        argv,
    )


def _create_app(settings: Settings) -> FastAPI:
    """The app over the shipped dice: the settings say where to listen and how much to
    log (run_service uses them), and the app itself needs none of them yet."""
    from .app import create_app  # after logging is set up, so start-up lines are JSON too

    return create_app()


if __name__ == "__main__":
    sys.exit(main())
