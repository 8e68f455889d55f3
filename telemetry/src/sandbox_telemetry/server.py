"""A sandbox service's command: its settings, its logging, and uvicorn, the same way
for every service."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Protocol, TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from .logs import configure_logging
from .settings import SettingsError

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "ServiceSettings", "run_service", "serve"]


class ServiceSettings(Protocol):
    """What every service's settings have: where to listen, and how much to log."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def log_level(self) -> str: ...


Settings = TypeVar("Settings", bound=ServiceSettings)

GRACEFUL_SHUTDOWN_SECONDS = 5
"""On SIGTERM, requests in flight get this long to finish before uvicorn closes the
connections and the service flushes its spans."""


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down gracefully and return."""
    # Uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler it found. A handler that ignores it makes a clean shutdown exit with 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _after_graceful_shutdown)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the JSON handlers configure_logging installed
        access_log=False,  # every request writes its own line (sandbox_telemetry.http)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """Uvicorn has already stopped cleanly when this runs: nothing is left to do."""


def run_service(
    prog: str,
    description: str,
    model: type[BaseModel],
    prefix: str,
    load_settings: Callable[..., Settings],
    create_app: Callable[[Settings], FastAPI],
    argv: Sequence[str] | None = None,
) -> int:
    """The `prog` command: `--host`/`--port` over the `PREFIX_*` settings, then serve.

    A bad setting is one message naming every bad value, and exit code 2.
    """
    fields = model.model_fields
    variables = ", ".join(f"{prefix}{name.upper()}" for name in fields)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=(
            f"Environment: {variables}; OpenTelemetry reads its standard OTEL_* variables "
            "(OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, "
            "OTEL_TRACES_EXPORTER=otlp|console|none, ...). Flags win over the environment."
        ),
    )
    for name in ("host", "port"):
        field = fields[name]
        parser.add_argument(
            f"--{name}",
            help=f"{field.description} [{prefix}{name.upper()}, default {field.default}]",
        )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port)
    except SettingsError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    serve(create_app(settings), settings.host, settings.port)
    return 0
