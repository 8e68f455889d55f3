"""The `die-service` command: read the settings, set up logging, serve."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fastapi import FastAPI
from sandbox_telemetry import run_service

from .dice import SHIPPED_DICE, DieSpec
from .settings import Settings, load_settings

__all__ = ["create_app_for", "main"]


def main(argv: Sequence[str] | None = None, prog: str = "die-service") -> int:
    """The command; `prog` names it in its usage line: `python -m` passes its own."""
    return run_service(
        prog,
        "Serve the dice's specifications: faces, failure rate and latency of each die.",
        Settings,
        "DIE_SERVICE_",
        load_settings,
        create_app_for,
        argv,
    )


def create_app_for(settings: Settings, dice: Sequence[DieSpec] = SHIPPED_DICE) -> FastAPI:
    """The app over `dice`: in memory (stage 3), or in the PostgreSQL database
    `DIE_SERVICE_DATABASE_URL` names (stage 5), where they are the rows it starts with;
    with the fault flags of `DIE_SERVICE_FLAGS_FILE`, if set."""
    # Imported after logging is set up, so start-up lines are JSON too.
    from sandbox_telemetry import create_tracer_provider, new_registry

    from . import SERVICE_NAME, __version__
    from .app import create_app
    from .catalogue import InMemoryCatalogue
    from .database import PostgresCatalogue
    from .flags import FaultFlags
    from .metrics import DatabaseMetrics

    flags = FaultFlags(settings)
    if not settings.database_url:
        return create_app(InMemoryCatalogue(dice), flags=flags)
    provider = create_tracer_provider(SERVICE_NAME, __version__)
    registry = new_registry()
    catalogue = PostgresCatalogue(
        settings.database_url,
        settings.database_pool_size,
        settings.database_timeout_seconds,
        DatabaseMetrics(registry),
        provider.get_tracer("die_service"),
        dice,
    )
    return create_app(catalogue, provider, registry, flags)


if __name__ == "__main__":
    sys.exit(main())
