"""The `dice-roller` command: read the settings, set up logging, serve with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import uvicorn
from sandbox_telemetry import configure_logging

from .settings import Settings, SettingsError, load_settings

__all__ = ["main"]

GRACEFUL_SHUTDOWN_SECONDS = 5
"""On SIGTERM, requests in flight get this long to finish (a roll takes at most a second
by default) before uvicorn closes the connections and the spans are flushed."""


def build_parser() -> argparse.ArgumentParser:
    fields = Settings.model_fields
    parser = argparse.ArgumentParser(
        prog="dice-roller",
        description="Serve the dice-roller API with its metrics, JSON logs and traces.",
        epilog=(
            "Environment: DICE_HOST, DICE_PORT, DICE_MAX_DELAY_SECONDS, "
            "DICE_RISKY_FAILURE_RATE, DICE_FLAGS_FILE, DICE_SEED, DICE_LOG_LEVEL; "
            "OpenTelemetry reads its standard OTEL_* variables (OTEL_SERVICE_NAME, "
            "OTEL_EXPORTER_OTLP_ENDPOINT, "
            "OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_EXPORTER=otlp|console|none, ...). "
            "Flags win over the environment."
        ),
    )
    for name in ("host", "port"):
        field = fields[name]
        parser.add_argument(
            f"--{name}", help=f"{field.description} [DICE_{name.upper()}, default {field.default}]"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port)
    except SettingsError as error:
        print(f"dice-roller: {error}", file=sys.stderr)
        return 2

    configure_logging(settings.log_level)
    from .app import create_app  # after logging, so start-up lines are JSON too

    # Uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler it found. A handler that ignores it makes a clean shutdown exit with 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _after_graceful_shutdown)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON handlers configure_logging installed
        access_log=False,  # every request writes its own line (sandbox_telemetry.http)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    return 0


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """Uvicorn has already stopped cleanly when this runs: nothing is left to do."""


if __name__ == "__main__":
    sys.exit(main())
