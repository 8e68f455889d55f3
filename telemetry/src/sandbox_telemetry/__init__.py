"""Metrics, JSON logs and traces for a sandbox service, in a few calls.

Every service of the sandbox is instrumented the same way::

    provider = create_tracer_provider("dice-roller", "0.1.0")  # exporters from OTEL_*
    app = FastAPI(telemetry=server_spans(provider))  # one server span per request
    registry = new_registry()  # the service's own metric families go here too
    instrument(app, registry, logger)  # HTTP metrics, traceresponse, request lines, /metrics
    run_service("dice-roller", ..., Settings, "DICE_", load_settings, create_app)

`run_service` reads the settings (`read_settings`: every bad value at once), makes
every log line JSON with the current span's ids (`configure_logging`) and serves the
app with uvicorn (`serve`).

What each call does, and why, is said where it is defined: `logs`, `tracing`, `http`,
`settings`, `server`.

A service with fault flags (the dice-roller, the die-service) installs the `flags`
extra and subclasses `flags.ServiceFlags`: its flags, read live from a flagd file that
`flag_file` watches, each evaluation that changes a request on the request's span.
Not imported here: the services without flags do without OpenFeature.
"""

from .http import (
    LATENCY_BUCKETS,
    SCRAPE_PATH,
    RequestTelemetry,
    instrument,
    metrics_route,
    new_registry,
    request_fields,
)
from .logs import configure_logging, cut_text
from .server import run_service, serve
from .settings import SettingsError, read_settings
from .tracing import create_tracer_provider, current_exemplar, current_ids, server_spans

__all__ = [
    "LATENCY_BUCKETS",
    "SCRAPE_PATH",
    "RequestTelemetry",
    "SettingsError",
    "configure_logging",
    "create_tracer_provider",
    "current_exemplar",
    "current_ids",
    "cut_text",
    "instrument",
    "metrics_route",
    "new_registry",
    "read_settings",
    "request_fields",
    "run_service",
    "serve",
    "server_spans",
]
