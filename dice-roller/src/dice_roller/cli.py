"""The `dice-roller` command: read the settings, set up logging, serve."""

from __future__ import annotations

import argparse
import sys

from sandbox_telemetry import configure_logging, serve

from .settings import Settings, SettingsError, load_settings

__all__ = ["main"]


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

    serve(create_app(settings), settings.host, settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
