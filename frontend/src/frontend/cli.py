"""The `frontend` command: read the settings, set up logging, serve."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fastapi import FastAPI
from sandbox_telemetry import run_service

from .settings import Settings, load_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, prog: str = "frontend") -> int:
    """The command; `prog` names it in its usage line: `python -m` passes its own."""
    return run_service(
        prog,
        "Serve the dice page and its API, in front of the dice-roller.",
        Settings,
        "FRONTEND_",
        load_settings,
        _create_app,
        argv,
    )


def _create_app(settings: Settings) -> FastAPI:
    from .app import create_app  # after logging is set up, so start-up lines are JSON too

    return create_app(settings)


if __name__ == "__main__":
    sys.exit(main())
